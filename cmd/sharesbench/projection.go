package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// startProjector runs the real projector (projector.New(...).Run) until
// ctx ends; stop cancels it and waits for Run to return.
func startProjector(ctx context.Context, js jetstream.JetStream, store *readmodel.Store, batchSize int) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	p := projector.New(js, store, slog.New(slog.DiscardHandler), projector.NewMetrics(prometheus.NewRegistry()),
		projector.Config{BatchSize: batchSize})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// waitCaughtUp polls the control hash until the active generation's
// position reaches lastSeq, printing progress, and returns when it did.
func waitCaughtUp(ctx context.Context, store *readmodel.Store, lastSeq uint64, timeout time.Duration, progress io.Writer) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	last, start := time.Now(), time.Now()
	for {
		ctl, err := store.ReadControl(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if ctl.Active != "" && ctl.Pos[ctl.Active] >= lastSeq {
			return time.Now(), nil
		}
		now := time.Now()
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("projector not caught up after %s: control %+v, want position %d", timeout, ctl, lastSeq)
		}
		if now.Sub(last) >= time.Second {
			last = now
			pos := ctl.Pos[ctl.Building]
			fmt.Fprintf(progress, "  catch-up: position %d/%d (%.0f%%), %.0f events/s (saved position lags one batch)\n",
				pos, lastSeq, 100*float64(pos)/float64(lastSeq), float64(pos)/now.Sub(start).Seconds())
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond): // the poll interval: the measure's resolution
		}
	}
}

// announcement is one position the projector announced, and when.
type announcement struct {
	at  time.Time
	pos uint64
}

// listenApplied records the projector's position announcements until ctx
// ends or the returned function is called. It returns once subscribed.
func listenApplied(ctx context.Context, store *readmodel.Store) (func() []announcement, error) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu         sync.Mutex
		seen       []announcement
		subscribed = make(chan struct{})
		once       sync.Once
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		store.FollowApplied(ctx, func(a readmodel.AppliedPos) {
			if !a.Announced { // (re)subscribed: the saved position
				once.Do(func() { close(subscribed) })
				return
			}
			mu.Lock()
			seen = append(seen, announcement{at: time.Now(), pos: a.Seq})
			mu.Unlock()
		})
	}()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		return nil, errors.New("subscribe to announcements: not subscribed after 10s")
	}
	return func() []announcement {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}, nil
}

// published is one live event: when its publish was called and the
// stream sequence its ack reported.
type published struct {
	at  time.Time
	seq uint64
}

// publishLive publishes share.viewed events at rate per second for d, on
// shares drawn with the workload's skew, and returns each one's publish
// time and stream sequence.
func publishLive(ctx context.Context, js jetstream.JetStream, w *workload, rate float64, d time.Duration, seed uint64) ([]published, error) {
	r := rand.New(rand.NewPCG(seed, 0x11fe))
	z := rand.NewZipf(r, 1.1, 2, uint64(len(w.shares)-1))
	total := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	futures := make([]jetstream.PubAckFuture, 0, total)
	times := make([]time.Time, 0, total)
	start := time.Now()
	for i := range total {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait) // pacing the publisher at rate, not synchronising
		}
		subject, id, data := w.LiveView(nil, i, int(z.Uint64()))
		now := time.Now()
		f, err := publishAsync(ctx, js, subject, id, data)
		if err != nil {
			return nil, fmt.Errorf("live publish %d: %w", i, err)
		}
		futures = append(futures, f)
		times = append(times, now)
	}
	out := make([]published, 0, total)
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			out = append(out, published{at: times[i], seq: ack.Sequence})
		case err := <-f.Err():
			return nil, fmt.Errorf("live publish %d: %w", i, err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("live publish %d: no ack after 10s", i)
		}
	}
	return out, nil
}

// longestGap is the longest time between two announcements.
func longestGap(ann []announcement) time.Duration {
	var gap time.Duration
	for i := 1; i < len(ann); i++ {
		gap = max(gap, ann[i].at.Sub(ann[i-1].at))
	}
	return gap
}

// visibility matches each published event to the first announcement of a
// position at or beyond its sequence and returns the sorted latencies and
// how many were never announced.
func visibility(pub []published, ann []announcement) ([]time.Duration, int) {
	lat := make([]time.Duration, 0, len(pub))
	missing := 0
	for _, p := range pub {
		i := sort.Search(len(ann), func(i int) bool { return ann[i].pos >= p.seq })
		if i == len(ann) {
			missing++
			continue
		}
		lat = append(lat, ann[i].at.Sub(p.at))
	}
	slices.Sort(lat)
	return lat, missing
}
