package projector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
)

// TestRestartMidStream stops a projector after some but not all of a
// stream, starts another, and checks that every event counted exactly once:
// while the first generation is being built, and while it is live.
func TestRestartMidStream(t *testing.T) {
	t.Parallel()
	for _, live := range []bool{false, true} {
		name := map[bool]string{false: "during the first build", true: "while live"}[live]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			project := eventstest.NewUUID()
			evs := workload(project, 4, 10, 60) // 2,444 events, mostly views
			var first *running
			if live {
				first = e.startWith(t, projector.Config{BatchSize: 8})
				e.waitApplied(t, 0, first)
			}
			seqs := e.publishAsync(t, evs)
			last := seqs[len(seqs)-1]
			if !live {
				first = e.startWith(t, projector.Config{BatchSize: 8})
			}
			polltest.WaitFor(t, 20*time.Second, func() error {
				if st := first.p.Status(); st.Applied < last/4 {
					return fmt.Errorf("first projector at %d, want %d", st.Applied, last/4)
				}
				return nil
			})
			first.stop(t)

			ctl, err := e.store.ReadControl(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			gen := ctl.Active
			if !live {
				gen = ctl.Building
			}
			pos := ctl.Pos[gen]
			if gen == "" || pos == 0 || pos >= last {
				t.Fatalf("after the stop: control %+v, want generation %s saved mid-way through %d events", ctl, gen, last)
			}
			// Let a crash before the position was saved be simulated too:
			// what lies between the saved and the applied position is
			// delivered again and must not count twice.
			if err := e.store.Rewind(context.Background(), gen, pos/2); err != nil {
				t.Fatal(err)
			}

			second := e.startWith(t, projector.Config{BatchSize: 64})
			e.waitApplied(t, last, second)
			modelOf(project, evs).check(t, e)
			if got := metric(t, second.reg, "sharesd_redeliveries_total"); got < float64(pos-pos/2) {
				t.Fatalf("second projector skipped %v redelivered events, want at least %d", got, pos-pos/2)
			}
		})
	}
}

// TestTwoProjectors runs two projectors at once: one leads and projects,
// the other stands by, and takes over when the leader stops.
func TestTwoProjectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.start(t), e.start(t)
	project := eventstest.NewUUID()
	evs := workload(project, 3, 5, 20)
	e.publishAsync(t, evs)
	e.waitApplied(t, e.lastSeq(t), a, b)
	m := modelOf(project, evs)
	m.check(t, e)

	var leader, standby *running
	polltest.WaitFor(t, 5*time.Second, func() error {
		la, lb := a.p.Status().Leader, b.p.Status().Leader
		switch {
		case la && !lb:
			leader, standby = a, b
		case lb && !la:
			leader, standby = b, a
		default:
			return fmt.Errorf("leaders: a %v, b %v; want exactly one", la, lb)
		}
		return nil
	})
	if n := appliedTotal(t, standby); n != 0 {
		t.Fatalf("the standby projector processed %v events, want 0", n)
	}

	leader.stop(t)
	more := moreViews(m, 200)
	e.publishAsync(t, more)
	e.waitApplied(t, e.lastSeq(t), standby)
	for _, ev := range more {
		m.add(ev)
	}
	m.check(t, e)
	if !standby.p.Status().Leader {
		t.Fatal("the standby projector did not take the lease after the leader stopped")
	}
	if n := appliedTotal(t, standby); n < float64(len(more)) {
		t.Fatalf("the new leader processed %v events, want at least %d", n, len(more))
	}
}

// appliedTotal is the number of events r processed, whatever the outcome.
func appliedTotal(t testing.TB, r *running) float64 {
	t.Helper()
	var n float64
	for _, v := range series(t, r.reg, "sharesd_events_applied_total", "outcome") {
		n += v
	}
	return n
}

// TestShutdown cancels a projector, idle and busy, and checks that Run
// returns within 10s with the position it reached saved, and nothing
// beyond it applied.
func TestShutdown(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		e := newEnv(t)
		r := e.start(t)
		project := eventstest.NewUUID()
		evs := workload(project, 2, 3, 5)
		seqs := e.publishAsync(t, evs)
		last := seqs[len(seqs)-1]
		e.waitApplied(t, last, r)
		if d := r.stop(t); d > 10*time.Second {
			t.Fatalf("Run returned %v after cancel, want within 10s", d)
		}
		ctl, err := e.store.ReadControl(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := ctl.Pos[ctl.Active]; got != last {
			t.Fatalf("saved position = %d, want %d", got, last)
		}
		if held, err := e.store.LeasesHeld(context.Background()); err != nil || held > 0 {
			t.Fatalf("lease held after shutdown = %v (%v), want it released", held, err)
		}
	})
	t.Run("busy", func(t *testing.T) {
		e := newEnv(t)
		r := e.startWith(t, projector.Config{BatchSize: 8})
		e.waitApplied(t, 0, r)
		project := eventstest.NewUUID()
		evs := workload(project, 2, 5, 150)
		seqs := e.publishAsync(t, evs)
		last := seqs[len(seqs)-1]
		polltest.WaitFor(t, 20*time.Second, func() error {
			if st := r.p.Status(); st.Applied < last/4 {
				return fmt.Errorf("projector at %d, want %d", st.Applied, last/4)
			}
			return nil
		})
		if d := r.stop(t); d > 10*time.Second {
			t.Fatalf("Run returned %v after cancel, want within 10s", d)
		}
		applied := r.p.Status().Applied
		ctl, err := e.store.ReadControl(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := ctl.Pos[ctl.Active]; got != applied || applied >= last {
			t.Fatalf("saved position = %d, applied %d of %d: want the applied position saved, mid-way", got, applied, last)
		}
		// Exactly the events up to the saved position are in the lists.
		n := 0
		for n < len(seqs) && seqs[n] <= applied {
			n++
		}
		modelOf(project, evs[:n]).check(t, e)
	})
}

// TestCheckpoint checks that each batch saves the position of the batch
// before it in its own round trip, so a crash redelivers at most one batch.
func TestCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.startWith(t, projector.Config{BatchSize: 1})
	e.waitApplied(t, 0, r)
	project, render := eventstest.NewUUID(), eventstest.NewUUID()
	var prev, seq uint64
	for _, ev := range []eventstest.Event{eventstest.RenderCreated(project, render), eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareViewed(project, render, "s1"), eventstest.ShareViewed(project, render, "s1")} {
		prev, seq = seq, e.publish(t, ev)
		// One event at a time: each is a batch of its own.
		polltest.WaitFor(t, 10*time.Second, func() error {
			if st := r.p.Status(); st.Applied < seq {
				return fmt.Errorf("projector at %d, want %d", st.Applied, seq)
			}
			return nil
		})
	}
	ctl, err := e.store.ReadControl(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := ctl.Pos[ctl.Active]; got < prev {
		t.Fatalf("saved position after the batch ending at %d = %d, want at least %d (the previous batch's end)", seq, got, prev)
	}
}
