package projector_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// watchHeal reads the renders of final round-robin until every one lists
// exactly as final says. Until then every read must fail with
// ErrUnavailable (or a connection error while Redis is down) or list every
// share with at least the clicks of floor, the model before the fault:
// never ErrNotFound, never a missing share, never a lower count. It returns
// how many reads were unavailable.
func watchHeal(t testing.TB, e *env, floor, final *model, timeout time.Duration) int {
	t.Helper()
	renders := final.renders()
	unavailable, healed := 0, map[string]bool{}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond) // paced, so the rebuild gets the CPU
	defer tick.Stop()
	for i := 0; len(healed) < len(renders); i++ {
		<-tick.C
		if time.Now().After(deadline) {
			t.Fatalf("read model not healed after %v: %d of %d renders right, %d reads unavailable", timeout, len(healed), len(renders), unavailable)
		}
		r := renders[i%len(renders)]
		l, err := e.store.List(context.Background(), final.project, r, nil)
		switch {
		case errors.Is(err, readmodel.ErrUnavailable):
			unavailable++
			healed = map[string]bool{}
			continue
		case errors.Is(err, readmodel.ErrNotFound):
			t.Fatalf("read %d: render %s: ErrNotFound while the read model heals, want ErrUnavailable", i, r)
		case err != nil:
			continue // Redis is not back yet
		}
		got := clicks(decodeList(t, l))
		if err := sameClicks(got, final.shares[r]); err == nil {
			healed[r] = true
			continue
		}
		delete(healed, r)
		if len(got) != len(floor.shares[r]) {
			t.Fatalf("read %d: render %s lists %d shares while the read model heals, want %d", i, r, len(got), len(floor.shares[r]))
		}
		for id, n := range floor.shares[r] {
			if got[id] < n || got[id] > final.shares[r][id] {
				t.Fatalf("read %d: render %s share %s has %d clicks while the read model heals, want %d to %d",
					i, r, id, got[id], n, final.shares[r][id])
			}
		}
	}
	return unavailable
}

// TestSelfHealAfterFlushAll flushes Redis under a projector that has
// applied a 20,000-event stream: it must notice, rebuild, and answer
// ErrUnavailable meanwhile, never a wrong answer.
func TestSelfHealAfterFlushAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	project := eventstest.NewUUID()
	evs := workload(project, 20, 10, 99) // 20,020 events
	e.publishAsync(t, evs)
	r := e.start(t)
	last := e.lastSeq(t)
	e.waitApplied(t, last, r)
	m := modelOf(project, evs)
	m.check(t, e)
	before, err := e.store.ReadControl(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	if err := e.rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	// It notices within its idle second (and its ticker's jitter).
	polltest.WaitFor(t, 5*time.Second, func() error {
		if n := metric(t, r.reg, "sharesd_self_heals_total"); n != 1 {
			return fmt.Errorf("sharesd_self_heals_total = %v, want 1", n)
		}
		return nil
	})
	if n := watchHeal(t, e, m, m, 30*time.Second); n == 0 {
		t.Fatal("no read was unavailable after FLUSHALL; want ErrUnavailable until the rebuild is done")
	}
	m.check(t, e)
	after, err := e.store.ReadControl(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.Active == before.Active || after.Pos[after.Active] != last {
		t.Fatalf("control after the heal = %+v, want a new generation (not %s) at %d", after, before.Active, last)
	}
	if got := metric(t, r.reg, "sharesd_self_heals_total"); got != 1 {
		t.Fatalf("sharesd_self_heals_total = %v after the heal, want 1", got)
	}

	// It goes on projecting into the new generation.
	more := moreViews(m, 50)
	e.publishAsync(t, more)
	e.waitApplied(t, e.lastSeq(t), r)
	for _, ev := range more {
		m.add(ev)
	}
	m.check(t, e)
}

// TestSelfHealAfterRedisRestart restarts Redis empty while events keep
// arriving: the projector rebuilds and misses nothing.
func TestSelfHealAfterRedisRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t)
	project := eventstest.NewUUID()
	evs := workload(project, 3, 5, 10)
	e.publishAsync(t, evs)
	e.waitApplied(t, e.lastSeq(t), r)
	m := modelOf(project, evs)
	m.check(t, e)

	e.redis.Restart(t)
	more := moreViews(m, 100)
	e.publishAsync(t, more)
	floor := modelOf(project, evs)
	for _, ev := range more {
		m.add(ev)
	}
	watchHeal(t, e, floor, m, 30*time.Second)
	e.waitApplied(t, e.lastSeq(t), r)
	m.check(t, e)
	// Keys only: when the restart surfaces as an error first, the dying run
	// saves the old generation's position into the new Redis on its way out
	// and that field of the control hash is never deleted (reported).
	e.wantOnlyActiveKeys(t)
}

// wantOnlyActiveGen waits until the only generation holding keys or a
// position is the active one: a replaced generation leaves nothing behind.
func (e *env) wantOnlyActiveGen(t testing.TB) { e.waitOnlyActive(t, true) }

// wantOnlyActiveKeys waits until the only generation holding keys is the
// active one.
func (e *env) wantOnlyActiveKeys(t testing.TB) { e.waitOnlyActive(t, false) }

func (e *env) waitOnlyActive(t testing.TB, positions bool) {
	t.Helper()
	polltest.WaitFor(t, 10*time.Second, func() error {
		ctl, err := e.store.ReadControl(context.Background())
		if err != nil {
			return err
		}
		gens, err := e.store.Generations(context.Background())
		if err != nil {
			return err
		}
		for g, n := range gens {
			if g != ctl.Active {
				return fmt.Errorf("generation %s (active %s) still has %d keys", g, ctl.Active, n)
			}
		}
		for g := range ctl.Pos {
			if positions && g != ctl.Active {
				return fmt.Errorf("control still holds a position for generation %s (active %s)", g, ctl.Active)
			}
		}
		return nil
	})
}

// TestRedisPaused stops Redis for two seconds while events arrive; once it
// is back every event counts exactly once.
func TestRedisPaused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t)
	project := eventstest.NewUUID()
	evs := workload(project, 3, 5, 10)
	e.publishAsync(t, evs)
	e.waitApplied(t, e.lastSeq(t), r)
	m := modelOf(project, evs)

	e.redis.Pause(t)
	paused := moreViews(m, 150)
	e.publishAsync(t, paused)
	<-time.After(2 * time.Second) // the fault's duration, not a synchronisation
	e.redis.Resume(t)
	after := moreViews(m, 50)
	e.publishAsync(t, after)
	for _, ev := range append(paused, after...) {
		m.add(ev)
	}
	e.waitApplied(t, e.lastSeq(t), r)
	m.check(t, e)
}

// TestNATSRestart restarts the NATS server on the same store while the
// projector runs: it reconnects and applies what is published afterwards.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t)
	project := eventstest.NewUUID()
	evs := workload(project, 3, 5, 10)
	e.publishAsync(t, evs)
	e.waitApplied(t, e.lastSeq(t), r)
	m := modelOf(project, evs)

	e.ns = natstest.RestartServer(t, e.ns)
	polltest.WaitFor(t, 10*time.Second, func() error {
		if !e.nc.IsConnected() {
			return errors.New("client not reconnected")
		}
		_, err := e.js.Stream(context.Background(), "CRAFTKIT")
		return err
	})
	more := moreViews(m, 100)
	e.publishAsync(t, more)
	for _, ev := range more {
		m.add(ev)
	}
	e.waitApplied(t, e.lastSeq(t), r)
	m.check(t, e)
}
