package projector_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
)

// TestMetrics checks the projector's counters and gauges against what it
// was given: views applied, duplicates apart, and no lag once caught up.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t)
	project, render := eventstest.NewUUID(), eventstest.NewUUID()
	e.publish(t, eventstest.RenderCreated(project, render), eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"))
	for range 7 {
		e.publish(t, eventstest.ShareViewed(project, render, "s1"))
	}
	dup := eventstest.ShareViewed(project, render, "s1")
	e.publish(t, dup)
	natstest.Publish(t, e.js, dup.Subject(), dup.Body(), "retry-"+dup.ID) // same event id, new Nats-Msg-Id
	e.waitApplied(t, e.lastSeq(t), r)
	e.wantClicks(t, project, render, map[string]int{"s1": 8})

	if got := metric(t, r.reg, "sharesd_events_applied_total", "type", "share.viewed", "outcome", "applied"); got != 8 {
		t.Fatalf(`sharesd_events_applied_total{type="share.viewed",outcome="applied"} = %v, want 8`, got)
	}
	if got := metric(t, r.reg, "sharesd_events_applied_total", "type", "share.created", "outcome", "applied"); got != 1 {
		t.Fatalf(`sharesd_events_applied_total{type="share.created",outcome="applied"} = %v, want 1`, got)
	}
	if got := metric(t, r.reg, "sharesd_events_applied_total", "type", "share.viewed", "outcome", "duplicate"); got != 1 {
		t.Fatalf(`sharesd_events_applied_total{type="share.viewed",outcome="duplicate"} = %v, want 1`, got)
	}
	head := float64(e.lastSeq(t))
	polltest.WaitFor(t, 5*time.Second, func() error {
		lag := metric(t, r.reg, "sharesd_projection_lag_events")
		pos := metric(t, r.reg, "sharesd_projection_position")
		seen := metric(t, r.reg, "sharesd_stream_last_sequence")
		if lag != 0 || pos != head || seen != head {
			return fmt.Errorf("lag %v, position %v, stream last sequence %v; want 0, %v, %v", lag, pos, seen, head, head)
		}
		return nil
	})
}
