package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector"
)

const (
	// publishWindow is how many asynchronous publishes may await their
	// ack at once.
	publishWindow = 256
	// publishMaxLine is the longest line read; Decode rejects anything above
	// events.MaxSize with a precise error, so this only bounds memory.
	publishMaxLine = 4 * events.MaxSize
	// publishMaxReported is how many bad lines an error lists.
	publishMaxReported = 10
)

// runPublish publishes contract events from a JSON-lines file or stdin. It
// validates every line first and publishes nothing when one is bad.
func runPublish(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("publish", env, &cfg, "nats")
	file := fs.String("file", "", "JSON-lines file of contract events, one object per line (default: stdin)")
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}

	if *file == "" && onTerminal(env.stdin) {
		fmt.Fprintln(env.stderr, "reading events from stdin, one JSON object per line; end with Ctrl-D")
	}
	src, name, cleanup, err := publishSource(env.stdin, *file)
	if err != nil {
		return err
	}
	defer cleanup()
	total, err := validateLines(src)
	if err != nil {
		return fmt.Errorf("publish %s: %w", name, err)
	}
	if total == 0 {
		fmt.Fprintf(env.stdout, "nothing to publish: %s holds no events\n", name)
		return nil
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("publish %s: rewind: %w", name, err)
	}

	logger := newLogger(cfg, env.stderr)
	nc, _, err := connectNATS(cfg.NATSURL, logger, false)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := projector.EnsureStreams(sctx, js); err != nil {
		return err
	}

	p := &publisher{js: js, total: total, progress: newPublishProgress(env.stderr, "publish", total)}
	start := time.Now()
	if err := p.publishAll(ctx, src); err != nil {
		return fmt.Errorf("publish %s: %w (published %d of %d before it; running the same file again is safe: events already stored are dropped by their Nats-Msg-Id within the stream's window, and by event id in the projector)",
			name, err, p.stored+p.dups, total)
	}
	elapsed := time.Since(start)
	fmt.Fprintf(env.stdout, "published %d events from %s in %s (%.0f events/s): %d stored, %d duplicates already in the stream (same Nats-Msg-Id)\n",
		total, name, elapsed.Round(time.Millisecond), float64(total)/max(elapsed.Seconds(), 1e-3), p.stored, p.dups)
	fmt.Fprintf(env.stdout, "last stream sequence %d\n", p.lastSeq)
	return nil
}

// publishSource opens the input for two passes (validate, then publish).
// Standard input is spooled to a temporary file so a large input is not
// held in memory.
func publishSource(stdin io.Reader, file string) (src io.ReadSeeker, name string, cleanup func(), err error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, "", nil, fmt.Errorf("-file: %w", err)
		}
		return f, file, func() { f.Close() }, nil
	}
	if f, ok := stdin.(*os.File); ok {
		// A redirected regular file is read twice in place.
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil {
				return io.NewSectionReader(f, off, st.Size()-off), "stdin", func() {}, nil
			}
		}
	}
	tmp, err := os.CreateTemp("", "sharesd-publish-*.jsonl")
	if err != nil {
		return nil, "", nil, fmt.Errorf("spool stdin: %w", err)
	}
	cleanup = func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, stdin); err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("read stdin: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("spool stdin: %w", err)
	}
	return tmp, "stdin", cleanup, nil
}

// eachLine calls fn with the number and content of every non-blank line.
func eachLine(r io.Reader, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), publishMaxLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("line %d: longer than %d bytes (an event may have at most %d)", n+1, publishMaxLine, events.MaxSize)
	}
	return sc.Err()
}

// validateLines checks every line and returns how many events there are,
// or an error listing the bad lines ("line N: <DecodeError>").
func validateLines(r io.Reader) (int, error) {
	total, bad := 0, 0
	var report []error
	err := eachLine(r, func(n int, line []byte) error {
		if _, err := eventMsg(line); err != nil {
			bad++
			if len(report) < publishMaxReported {
				report = append(report, fmt.Errorf("line %d: %w", n, err))
			}
			return nil
		}
		total++
		return nil
	})
	if err != nil {
		return 0, err
	}
	if bad == 0 {
		return total, nil
	}
	if bad > len(report) {
		report = append(report, fmt.Errorf("… and %d more bad lines", bad-len(report)))
	}
	return 0, fmt.Errorf("%d invalid lines, nothing published:\n%w", bad, errors.Join(report...))
}

// publisher publishes events asynchronously with at most publishWindow
// awaiting their ack.
type publisher struct {
	js       jetstream.JetStream
	total    int
	progress *publishProgress

	window  []inflight // oldest first
	stored  int
	dups    int
	lastSeq uint64
}

type inflight struct {
	line int
	msg  *nats.Msg
	fut  jetstream.PubAckFuture
}

// publishAll publishes every line of r, which has been validated, and waits
// for every ack. Each line is decoded once here, for its subject and
// message id, as once in validateLines: keeping the messages between the
// two passes would hold the whole input in memory.
func (p *publisher) publishAll(ctx context.Context, r io.Reader) error {
	err := eachLine(r, func(n int, line []byte) error {
		msg, err := eventMsg(line)
		if err != nil {
			return fmt.Errorf("line %d changed after validation: %w", n, err)
		}
		// Keep a copy: the client may set fields of the message it sends.
		keep := &nats.Msg{Subject: msg.Subject, Header: msg.Header, Data: msg.Data}
		fut, err := p.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		p.window = append(p.window, inflight{line: n, msg: keep, fut: fut})
		if len(p.window) >= publishWindow {
			return p.awaitOldest(ctx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for len(p.window) > 0 {
		if err := p.awaitOldest(ctx); err != nil {
			return err
		}
	}
	p.progress.done(p.stored + p.dups)
	return nil
}

// awaitOldest waits for the ack of the oldest publish in the window. A
// failed asynchronous publish is retried synchronously: with its
// Nats-Msg-Id, a copy the stream already stored is dropped as a duplicate.
func (p *publisher) awaitOldest(ctx context.Context) error {
	f := p.window[0]
	p.window = p.window[1:]
	var ack *jetstream.PubAck
	select {
	case <-ctx.Done():
		return ctx.Err()
	case ack = <-f.fut.Ok():
	case err := <-f.fut.Err():
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ack, err = p.js.PublishMsg(rctx, f.msg, jetstream.WithRetryAttempts(3))
		if err != nil {
			return fmt.Errorf("line %d: %w", f.line, err)
		}
	}
	if ack.Duplicate {
		p.dups++
	} else {
		p.stored++
	}
	p.lastSeq = max(p.lastSeq, ack.Sequence)
	p.progress.update(p.stored + p.dups)
	return nil
}

// publishProgress reports done/total and a rate on w: a bar redrawn in place on a
// terminal, otherwise a line at most every second.
type publishProgress struct {
	w        io.Writer
	what     string
	total    int
	terminal bool
	start    time.Time
	last     time.Time
	shown    bool
}

func newPublishProgress(w io.Writer, what string, total int) *publishProgress {
	now := time.Now()
	return &publishProgress{w: w, what: what, total: total, terminal: onTerminal(w), start: now, last: now}
}

func (p *publishProgress) update(done int) {
	now := time.Now()
	every := time.Second
	if p.terminal {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	p.show(done)
}

// done draws the final state when progress was shown at all.
func (p *publishProgress) done(done int) {
	if !p.shown {
		return
	}
	p.show(done)
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}

func (p *publishProgress) show(done int) {
	p.shown = true
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-3)
	pct := 100 * float64(done) / float64(max(p.total, 1))
	eta := "-"
	if rate > 0 && done < p.total {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	if !p.terminal {
		fmt.Fprintf(p.w, "%s: %d/%d events (%.0f%%), %.0f events/s, eta %s\n", p.what, done, p.total, pct, rate, eta)
		return
	}
	const width = 30
	fill := int(pct / 100 * width)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	fmt.Fprintf(p.w, "\r%s [%s] %d/%d %.0f%% %.0f events/s eta %s   ", p.what, bar, done, p.total, pct, rate, eta)
}
