package projector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
)

// TestDeadLettersOnceAcrossRebuilds dead-letters bad events, then wipes
// Redis twice (the projector heals itself) and runs a full rebuild: each
// bad event stays in the dead-letter stream once. The dead-letter stream's
// duplicate window is shortened and waited out before each wipe, as hours
// between restarts would. The old projector knew what it had dead-lettered
// only from Redis, and copied every bad event again on each rebuild.
func TestDeadLettersOnceAcrossRebuilds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const window = 200 * time.Millisecond
	updateDeadLetterStream(t, e, func(c *jetstream.StreamConfig) { c.Duplicates = window })
	project := eventstest.NewUUID()
	evs := workload(project, 2, 3, 10)
	var bad []uint64
	for i := 0; i < len(evs); i += 10 {
		e.publishAsync(t, evs[i:min(i+10, len(evs))])
		bad = append(bad, e.publishBad(t, evs[i].Render, fmt.Sprintf("bad event %d", i)))
	}
	r := e.start(t)
	e.waitApplied(t, e.lastSeq(t), r)
	m := modelOf(project, evs)
	m.check(t, e)
	wantOnce := func(when string) {
		t.Helper()
		got := map[string]int{}
		for _, dl := range e.deadLetters(t) {
			got[dl.Header.Get(projector.HeaderSeq)]++
		}
		for _, seq := range bad {
			if got[itoa(seq)] != 1 {
				t.Fatalf("%s: the bad event at seq %d has %d dead letters, want 1 (all: %v)", when, seq, got[itoa(seq)], got)
			}
		}
		if len(got) != len(bad) {
			t.Fatalf("%s: dead letters of %d events, want %d", when, len(got), len(bad))
		}
	}
	wantOnce("after the first run")

	for i := 1; i <= 2; i++ {
		<-time.After(window) // the duplicate window's length, not a synchronisation
		if err := e.rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		polltest.WaitFor(t, 10*time.Second, func() error {
			if n := metric(t, r.reg, "sharesd_self_heals_total"); n != float64(i) {
				return fmt.Errorf("sharesd_self_heals_total = %v, want %d", n, i)
			}
			return nil
		})
		e.waitApplied(t, e.lastSeq(t), r)
		m.check(t, e)
		wantOnce(fmt.Sprintf("after FLUSHALL %d", i))
	}

	<-time.After(window)
	rb := projector.New(e.js, e.store, testLogger(t), projector.NewMetrics(prometheus.NewRegistry()), projector.Config{LeaseTTL: time.Second, DropGrace: 100 * time.Millisecond})
	if _, err := rb.Rebuild(ctx, true, func(projector.Progress) {}); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	e.waitApplied(t, e.lastSeq(t), r)
	m.check(t, e)
	wantOnce("after a full rebuild")
}
