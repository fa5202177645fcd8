package readmodel_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

const benchProject = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c"

// benchOp is event number seq of render, at a stream time seq ms after at.
func benchOp(seq uint64, at time.Time, t events.Type, render string, data any) readmodel.Op {
	return readmodel.Op{Seq: seq, Time: at.Add(time.Duration(seq) * time.Millisecond), Event: events.Event{
		ID: fmt.Sprintf("bench-%d", seq), Type: t, OccurredAt: at, ProjectID: benchProject, RenderID: render, Data: data}}
}

// BenchmarkApply measures Store.Apply on a real redis-server: one batch of
// 512 events per iteration, one pipeline each, as the projector sends
// them. "views" spreads share.viewed over 100 renders of 100 shares;
// "shares" creates shares. It reports events/s and Redis's CPU per event
// (from INFO commandstats), so a change to the scripts shows where it
// costs.
func BenchmarkApply(b *testing.B) {
	const renders, shares, batch = 100, 100, 512
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	render := eventstest.UUID
	shareID := func(i int) string { return fmt.Sprintf("0b6c7c0e-8a1f-4c7e-9d2a-%012d", i) }
	msg := "Here is your signed agreement."
	for _, kind := range []string{"views", "shares"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			srv := redistest.Start(b)
			rdb := srv.Client(b)
			store := readmodel.New(rdb, readmodel.DefaultHorizon)
			gen := readmodel.NewGen(time.Now())
			var seq uint64
			var ops []readmodel.Op
			apply := func() {
				out, _, err := store.Apply(ctx, gen, ops, 0, false)
				if err != nil {
					b.Fatal(err)
				}
				for i, o := range out {
					if o.Outcome != readmodel.Applied {
						b.Fatalf("apply seq %d: %v", ops[i].Seq, o)
					}
				}
				ops = ops[:0]
			}
			for r := range renders {
				seq++
				ops = append(ops, benchOp(seq, at, events.TypeRenderCreated, render(r), &events.Empty{}))
				for s := range shares {
					seq++
					ops = append(ops, benchOp(seq, at, events.TypeShareCreated, render(r), &events.ShareCreated{
						ShareID: shareID(r*shares + s), Channel: "link", Message: &msg, CreatedAt: at, ShareToken: "cks_" + shareID(s)}))
				}
				apply()
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				for range batch {
					seq++
					r := n % renders
					if kind == "views" {
						ops = append(ops, benchOp(seq, at, events.TypeShareViewed, render(r), &events.ShareViewed{ShareID: shareID(r*shares + n%shares), ViewedAt: at}))
					} else {
						ops = append(ops, benchOp(seq, at, events.TypeShareCreated, render(r), &events.ShareCreated{
							ShareID: fmt.Sprintf("new-%d", n), Channel: "link", Message: &msg, CreatedAt: at, ShareToken: "cks_new"}))
					}
					n++
				}
				apply()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			st, err := rdb.InfoMap(ctx, "commandstats").Result()
			if err != nil {
				b.Fatal(err)
			}
			var usec float64
			if _, err := fmt.Sscanf(cutAfter(st["Commandstats"]["cmdstat_evalsha"], "usec="), "%g", &usec); err == nil && n > 0 {
				b.ReportMetric(usec/float64(n), "redis-µs/event")
			}
		})
	}
}

// cutAfter returns what follows the first sep in s ("" if none).
func cutAfter(s, sep string) string {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[i+len(sep):]
		}
	}
	return ""
}
