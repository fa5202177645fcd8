package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/model"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// Progress reports a rebuild's advance.
type Progress struct {
	Gen   string
	Phase string // "replaying", "handing over", "deleting old generation", "done"
	Done  uint64 // stream sequence reached
	Total uint64 // stream's last sequence
}

// ErrTruncated is returned when the stream no longer starts at sequence 1:
// a rebuild would silently miss the events that were removed.
var ErrTruncated = errors.New("stream history is incomplete")

// errDone ends a run that has finished its job.
var errDone = errors.New("projector: done")

// CheckComplete returns an ErrTruncated error saying what is missing when
// the stream's history does not start at sequence 1.
func CheckComplete(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", events.Stream, err)
	}
	st := s.CachedInfo().State
	if st.LastSeq > 0 && st.FirstSeq > 1 {
		return fmt.Errorf("%w: stream %s starts at sequence %d, so events 1..%d (%s) are gone — removed by a limit, MaxAge or a purge; a rebuild would build a silently partial read model. Restore the stream from a backup that holds its whole history, then rebuild",
			ErrTruncated, events.Stream, st.FirstSeq, st.FirstSeq-1, plural(st.FirstSeq-1, "event"))
	}
	return nil
}

func plural(n uint64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Rebuild replays the whole stream into a new generation while the active
// one keeps serving, then swaps it in atomically: itself when no projector
// holds a partition lease, else by handing it over to the live projectors
// (the first of which takes every partition for it), which bring it up to
// their own position first so readers never see an answer
// older than one they already had. It resumes the generation an interrupted
// rebuild left unless fresh is set. It returns the new generation.
func (p *Projector) Rebuild(ctx context.Context, fresh bool, progress func(Progress)) (string, error) {
	if err := CheckComplete(ctx, p.js); err != nil {
		return "", err
	}
	if err := p.store.LoadScripts(ctx); err != nil {
		return "", err
	}
	ctl, err := p.store.ReadControl(ctx)
	if err != nil {
		return "", err
	}
	gen, from, err := p.prepareBuild(ctx, ctl, fresh)
	if err != nil {
		return "", err
	}
	dead, err := p.loadDeadLetters(ctx, ctl)
	if err != nil {
		return gen, err
	}
	prev := ctl.Active
	err = p.consume(ctx, run{
		gen: gen, from: from, dead: dead,
		after: func(ctx context.Context, applied uint64, caughtUp bool) error {
			progress(Progress{Gen: gen, Phase: "replaying", Done: applied, Total: max(applied, p.Status().Head)})
			if caughtUp {
				return errDone
			}
			return nil
		},
	})
	if !errors.Is(err, errDone) {
		return gen, err
	}
	return gen, p.swapIn(ctx, gen, prev, progress)
}

// swapIn makes a rebuilt generation active, directly or by handover.
func (p *Projector) swapIn(ctx context.Context, gen, prev string, progress func(Progress)) error {
	held, err := p.holdAll(ctx)
	if err != nil {
		return err
	}
	if held {
		defer p.store.ReleaseLeases(context.WithoutCancel(ctx), p.token, nil, true)
		ok, err := p.store.Activate(ctx, gen, prev)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the active generation changed during the rebuild (was %q); run the rebuild again", prev)
		}
		if prev != "" {
			progress(Progress{Gen: gen, Phase: "deleting old generation"})
			sleep(ctx, p.cfg.DropGrace)
			if _, err := p.store.DropGen(ctx, prev); err != nil {
				return err
			}
		}
		return nil
	}
	if err := p.store.RequestHandover(ctx, gen); err != nil {
		return err
	}
	for {
		ctl, err := p.store.ReadControl(ctx)
		if err != nil {
			return err
		}
		switch {
		case ctl.Active == gen:
			return nil
		case ctl.Handover != gen:
			return fmt.Errorf("handover of %s was cancelled (active %q, handover %q)", gen, ctl.Active, ctl.Handover)
		}
		progress(Progress{Gen: gen, Phase: "handing over", Done: ctl.Pos[gen], Total: ctl.MaxPos(ctl.Active, p.store.Partitions())})
		sleep(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// holdAll takes every partition lease when no projector holds any, and
// reports whether it did; otherwise it holds none.
func (p *Projector) holdAll(ctx context.Context) (bool, error) {
	n := p.store.Partitions()
	got, err := p.store.ClaimLeases(ctx, p.token, p.cfg.LeaseTTL, n)
	if err != nil || len(got) == n {
		return err == nil, err
	}
	return false, p.store.ReleaseLeases(ctx, p.token, got, false)
}

// RebuildRender replays one render's events into scratch keys and swaps
// them over the live keys in one atomic step, once the scratch copy has
// applied at least as far as the live keys. The live projector may keep
// applying the render's events meanwhile: both apply in stream order under
// the same per-render sequence guard, so the copy swapped in holds every
// event the live keys held, and the live projector skips what it already
// holds after the swap.
func (p *Projector) RebuildRender(ctx context.Context, renderID string, progress func(Progress)) error {
	if err := CheckComplete(ctx, p.js); err != nil {
		return err
	}
	if err := p.store.LoadScripts(ctx); err != nil {
		return err
	}
	ctl, err := p.store.ReadControl(ctx)
	if err != nil {
		return err
	}
	if ctl.Active == "" {
		return errors.New("no active generation to rebuild a render of (a full rebuild is in progress or none has run)")
	}
	gen := ctl.Active
	if err := p.store.DropScratch(ctx, gen, renderID); err != nil {
		return err
	}
	dead, err := p.loadDeadLetters(ctx, ctl)
	if err != nil {
		return err
	}
	err = p.consume(ctx, run{
		gen: readmodel.ScratchGen(gen), scratch: true, filter: events.RenderSubjects(renderID), dead: dead,
		after: func(ctx context.Context, applied uint64, caughtUp bool) error {
			progress(Progress{Gen: gen, Phase: "replaying", Done: applied})
			if !caughtUp {
				return nil
			}
			behind, err := p.store.SwapRender(ctx, gen, renderID)
			if err != nil || behind > 0 {
				return err // the live keys are ahead: replay on, swap again
			}
			return errDone
		},
	})
	if !errors.Is(err, errDone) {
		_ = p.store.DropScratch(context.WithoutCancel(ctx), gen, renderID)
		return err
	}
	return nil
}

// ReadStream reads the stream (the subjects of filter, or all) up to its
// last sequence at the time of the call, for verification.
func ReadStream(ctx context.Context, js jetstream.JetStream, filter []string) ([]model.Msg, uint64, error) {
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return nil, 0, err
	}
	head := s.CachedInfo().State.LastSeq
	if head == 0 {
		return nil, 0, nil
	}
	cons, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: filter})
	if err != nil {
		return nil, 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	want := info.NumPending
	var msgs []model.Msg
	// Bounded in bytes, as the projector's fetching is: a stream of large
	// events does not make this reader a slow consumer.
	it, err := cons.Messages(jetstream.PullMaxBytes(2 * (int(js.Conn().MaxPayload()) + fetchSlack)))
	if err != nil {
		return nil, 0, err
	}
	defer it.Stop()
	for uint64(len(msgs)) < want {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, 0, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, 0, err
		}
		if md.Sequence.Stream > head {
			break
		}
		msgs = append(msgs, model.Msg{Seq: md.Sequence.Stream, Time: md.Timestamp, Subject: m.Subject(), Data: m.Data()})
		if md.NumPending == 0 {
			break
		}
	}
	return msgs, head, nil
}
