package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
)

// runDeadletterReplay publishes dead-lettered events again: the fixed event
// of the same id from -file if there is one, else the original if it now
// decodes. Replayed dead letters are deleted; the others are kept.
func runDeadletterReplay(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("deadletter replay", env, &cfg, "nats")
	var seqs []uint64
	fs.Func("seq", "dead-letter sequence to replay (repeat the flag, or separate with commas)", func(s string) error {
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil || n == 0 {
				return fmt.Errorf("got %q, want a dead-letter sequence such as 12", f)
			}
			seqs = append(seqs, n)
		}
		return nil
	})
	all := fs.Bool("all", false, "replay every dead letter")
	file := fs.String("file", "", "JSON-lines file of fixed events; each replaces the dead letter with the same event id")
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}
	if (len(seqs) > 0) == *all {
		return errors.New("deadletter replay: give either -seq N (one or more) or -all")
	}
	fixed, err := loadFixed(*file)
	if err != nil {
		return err
	}

	nc, js, err := connectNATS(cfg.NATSURL, newLogger(cfg, env.stderr), false)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	s, err := streamOrHint(ctx, js, events.DeadLetterStream)
	if err != nil {
		return err
	}
	r := &replayer{js: js, dl: s, fixed: fixed, env: env}
	if *all {
		err = r.all(ctx, s.CachedInfo().State.LastSeq)
	} else {
		err = r.seqs(ctx, seqs)
	}
	if err != nil {
		return fmt.Errorf("deadletter replay: %w", err)
	}
	return r.summary()
}

// fixedEvent is one line of -file.
type fixedEvent struct {
	line int
	msg  *nats.Msg
	used bool
}

// loadFixed reads and validates every fixed event; one bad line and
// nothing is replayed.
func loadFixed(file string) (map[string]*fixedEvent, error) {
	fixed := map[string]*fixedEvent{}
	if file == "" {
		return fixed, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("-file: %w", err)
	}
	defer f.Close()
	var bad []error
	err = eachLine(f, func(n int, line []byte) error {
		msg, err := eventMsg(line)
		if err != nil {
			bad = append(bad, fmt.Errorf("line %d: %w", n, err))
			return nil
		}
		id := msg.Header.Get(jetstream.MsgIDHeader)
		if prev, ok := fixed[id]; ok {
			bad = append(bad, fmt.Errorf("line %d: event id %q is already on line %d", n, id, prev.line))
			return nil
		}
		fixed[id] = &fixedEvent{line: n, msg: msg}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("-file %s: %w", file, err)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("-file %s: %d invalid lines, nothing replayed:\n%w", file, len(bad), errors.Join(bad...))
	}
	return fixed, nil
}

type replayer struct {
	js    jetstream.JetStream
	dl    jetstream.Stream
	fixed map[string]*fixedEvent
	env   *environment

	replayedFixed, replayedOriginal, kept, missing int
}

// all replays every dead letter up to last, the stream's last sequence
// when the replay started (what the projector dead-letters meanwhile waits
// for the next replay).
func (r *replayer) all(ctx context.Context, last uint64) error {
	for seq := uint64(1); seq <= last; {
		d, err := nextDeadLetter(ctx, r.dl, seq)
		if err != nil {
			return err
		}
		if d == nil || d.Seq > last {
			return nil
		}
		if err := r.one(ctx, d); err != nil {
			return err
		}
		seq = d.Seq + 1
	}
	return nil
}

func (r *replayer) seqs(ctx context.Context, seqs []uint64) error {
	for _, seq := range seqs {
		m, err := r.dl.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			r.missing++
			fmt.Fprintf(r.env.stdout, "dead letter %d: not found (already replayed or deleted)\n", seq)
			continue
		}
		if err != nil {
			return fmt.Errorf("read dead letter %d: %w", seq, err)
		}
		d := newDeadLetter(m)
		if err := r.one(ctx, &d); err != nil {
			return err
		}
	}
	return nil
}

// one replays dead letter d, or reports why it stays.
func (r *replayer) one(ctx context.Context, d *deadLetter) error {
	msg, what, why := r.choose(d)
	if msg == nil {
		r.kept++
		fmt.Fprintf(r.env.stdout, "dead letter %d (%s, original seq %d): kept, %s\n", d.Seq, d.OriginalSubject, d.OriginalSeq, why)
		return nil
	}
	ack, fresh, err := republish(ctx, r.js, msg, d.Seq)
	if err != nil {
		return fmt.Errorf("dead letter %d: publish: %w", d.Seq, err)
	}
	if err := r.dl.DeleteMsg(ctx, d.Seq); err != nil {
		return fmt.Errorf("dead letter %d: replayed as stream seq %d but not deleted from %s: %w", d.Seq, ack.Sequence, events.DeadLetterStream, err)
	}
	if what == "fixed" {
		r.replayedFixed++
	} else {
		r.replayedOriginal++
	}
	note := ""
	if fresh {
		note = " (under a fresh Nats-Msg-Id: the original was still in the stream's duplicate window)"
	}
	fmt.Fprintf(r.env.stdout, "dead letter %d (%s, original seq %d): replayed the %s event %q as stream seq %d%s, deleted from %s\n",
		d.Seq, d.OriginalSubject, d.OriginalSeq, what, d.EventID, ack.Sequence, note, events.DeadLetterStream)
	return nil
}

// choose returns what to publish for d and whether it is the fixed or the
// original event, or nil and why d must stay.
func (r *replayer) choose(d *deadLetter) (msg *nats.Msg, what, why string) {
	if f, ok := r.fixed[d.EventID]; ok && d.EventID != "" {
		f.used = true
		return f.msg, "fixed", ""
	}
	hint := fmt.Sprintf("; put a fixed event with id %q in -file", d.EventID)
	if d.EventID == "" {
		hint = "; it has no event id, so no fixed event can replace it: publish a corrected event with `sharesd publish`"
	}
	if _, err := events.Decode(d.OriginalSubject, d.data); err != nil {
		return nil, "", "still invalid: " + err.Error() + hint
	}
	if d.Field == "projectId" {
		// It decodes: the projector refused it because its projectId is
		// not the project of its render or key, which replaying the same
		// event would repeat.
		return nil, "", "decodes, but was refused because its projectId is not its render's or key's project" + hint
	}
	msg, err := eventMsg(d.data)
	if err != nil {
		return nil, "", "still invalid: " + err.Error() + hint
	}
	return msg, "original", ""
}

// republish publishes msg, whose Nats-Msg-Id is its event id, and reports
// whether it needed a fresh Nats-Msg-Id to get stored.
//
// The contract makes the event id the Nats-Msg-Id, and we keep it: the
// projector deduplicates by event id (over its horizon), and a dead-lettered
// event was never applied (it failed to decode, or its project did not
// match, which the scripts check before they record the id), so a fixed
// event with the same id is applied, once. The only thing that stops it is
// JetStream's own duplicate window (2 minutes by default): while the bad
// original is younger than that, the stream drops a message with its
// Nats-Msg-Id and answers Duplicate, storing nothing. Only then is msg
// published again as "<event id>#replay-<dead-letter seq>": new to the
// stream, yet the same on every run, so a replay repeated after a crash
// stores it once within the window, and any later copy is dropped by the
// projector's event-id deduplication anyway.
func republish(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, dlSeq uint64) (*jetstream.PubAck, bool, error) {
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil || !ack.Duplicate {
		return ack, false, err
	}
	again := nats.NewMsg(msg.Subject)
	again.Data = msg.Data
	again.Header.Set(jetstream.MsgIDHeader, msg.Header.Get(jetstream.MsgIDHeader)+"#replay-"+strconv.FormatUint(dlSeq, 10))
	ack, err = js.PublishMsg(ctx, again)
	return ack, true, err
}

func (r *replayer) summary() error {
	w := r.env.stdout
	for id, f := range r.fixed {
		if !f.used {
			fmt.Fprintf(r.env.stderr, "fixed event %q (line %d) matches no selected dead letter: not published\n", id, f.line)
		}
	}
	fmt.Fprintf(w, "replayed %d (%d fixed, %d original), kept %d", r.replayedFixed+r.replayedOriginal, r.replayedFixed, r.replayedOriginal, r.kept)
	if r.missing > 0 {
		fmt.Fprintf(w, ", %d not found", r.missing)
	}
	fmt.Fprintln(w)
	if r.kept > 0 || r.missing > 0 {
		return fmt.Errorf("deadletter replay: %d dead letters kept, %d not found", r.kept, r.missing)
	}
	return nil
}
