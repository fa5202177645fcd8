package projector_test

import (
	"context"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
)

// BenchmarkProjectorCatchUp measures the real projector (projector.New(...)
// .Run) catching up from an empty Redis over a stream of 20,000 events on
// an embedded JetStream and a real redis-server: 50 renders of 40 shares
// and 17,950 views. Each iteration flushes Redis, starts a projector and
// waits until the active generation holds the whole stream. It reports
// events/s; cmd/sharesbench runs the same at scale next to its ceilings.
func BenchmarkProjectorCatchUp(b *testing.B) {
	const renders, shares, total = 50, 40, 20000
	e := newEnv(b)
	project := eventstest.NewUUID()
	var evs []eventstest.Event
	ids := make([][2]string, 0, renders*shares)
	at := time.Date(2026, 6, 5, 10, 0, 0, 0, time.UTC)
	for r := range renders {
		render := eventstest.NewUUID()
		evs = append(evs, eventstest.RenderCreated(project, render))
		for s := range shares {
			share := eventstest.NewUUID()
			ids = append(ids, [2]string{render, share})
			evs = append(evs, eventstest.ShareCreated(project, render, share, at.Add(time.Duration(r*shares+s)*time.Second).Format(time.RFC3339)))
		}
	}
	for i := 0; len(evs) < total; i++ {
		k := (i * 7919) % len(ids) // views spread over every share
		evs = append(evs, eventstest.ShareViewed(project, ids[k][0], ids[k][1]))
	}
	var last uint64
	for len(evs) > 0 {
		n := min(len(evs), 2000)
		seqs := e.publishAsync(b, evs[:n])
		last = seqs[len(seqs)-1]
		evs = evs[n:]
	}
	if last != total {
		b.Fatalf("stream ends at %d, want %d", last, total)
	}
	for b.Loop() {
		if err := e.rdb.FlushAll(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
		r := e.start(b)
		e.waitApplied(b, last, r)
		r.stop(b)
	}
	b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
	if got := len(e.mustList(b, project, ids[0][0])); got != shares {
		b.Fatalf("render %s lists %d shares, want %d", ids[0][0], got, shares)
	}
}
