package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
)

// publishErrors records the failures of asynchronous publishes.
type publishErrors struct {
	mu    sync.Mutex
	n     int
	first error
}

func (e *publishErrors) record(_ jetstream.JetStream, _ *nats.Msg, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		e.first = err
	}
	e.n++
}

func (e *publishErrors) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		return nil
	}
	return fmt.Errorf("%d asynchronous publishes failed, the first with: %w", e.n, e.first)
}

// publishAsync publishes one event with its Nats-Msg-Id, waiting for room
// when too many publishes are in flight.
func publishAsync(ctx context.Context, js jetstream.JetStream, subject, id string, data []byte) (jetstream.PubAckFuture, error) {
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, id)
	for {
		f, err := js.PublishMsgAsync(msg)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return f, err
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// publishWorkload publishes every event of w in order and returns the
// stream's last sequence and the publish rate. It checks that the stream
// holds exactly the workload afterwards.
func publishWorkload(ctx context.Context, js jetstream.JetStream, w *workload, pubErrs *publishErrors, progress io.Writer) (uint64, float64, error) {
	start := time.Now()
	tick := newTicker(progress, "publish", w.Len())
	var buf []byte
	for i := range w.Len() {
		subject, id, data := w.Event(i, buf)
		// The message keeps data until it is acked: give each its own copy.
		if _, err := publishAsync(ctx, js, subject, id, append([]byte(nil), data...)); err != nil {
			return 0, 0, fmt.Errorf("publish event %d: %w", i, err)
		}
		buf = data[:0]
		tick.add(1)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	elapsed := time.Since(start)
	tick.done()
	if err := pubErrs.err(); err != nil {
		return 0, 0, err
	}
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return 0, 0, err
	}
	st := s.CachedInfo().State
	if st.Msgs != uint64(w.Len()) {
		return 0, 0, fmt.Errorf("stream holds %d events after publishing %d", st.Msgs, w.Len())
	}
	return st.LastSeq, float64(w.Len()) / elapsed.Seconds(), nil
}

// ticker prints progress lines to stderr, at most one a second.
type ticker struct {
	w     io.Writer
	what  string
	total int
	n     int
	start time.Time
	last  time.Time
}

func newTicker(w io.Writer, what string, total int) *ticker {
	now := time.Now()
	return &ticker{w: w, what: what, total: total, start: now, last: now}
}

func (t *ticker) add(n int) {
	t.n += n
	if now := time.Now(); now.Sub(t.last) >= time.Second {
		t.last = now
		t.print(now)
	}
}

func (t *ticker) print(now time.Time) {
	el := now.Sub(t.start).Seconds()
	fmt.Fprintf(t.w, "  %s: %d/%d (%.0f%%), %.0f/s\n", t.what, t.n, t.total, 100*float64(t.n)/float64(max(t.total, 1)), float64(t.n)/max(el, 1e-9))
}

func (t *ticker) done() { t.print(time.Now()) }
