package projector_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
)

// TestBadEvents publishes each kind of bad event followed by a good one:
// the bad one is never applied, is copied to the dead-letter stream with
// its origin and reason, is counted, and does not hold back the good one.
func TestBadEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	project, render := eventstest.NewUUID(), eventstest.NewUUID()
	e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"))

	// body returns a well-formed view of s1 changed by f.
	body := func(f func(m map[string]any)) []byte {
		m := eventstest.ShareViewed(project, render, "s1").Envelope()
		f(m)
		return mustJSON(m)
	}
	viewSubject := events.Subject(events.TypeShareViewed, render)
	huge := eventstest.ShareCreated(project, render, "huge", "2026-06-05T10:00:00Z")
	huge.Data["shareToken"] = strings.Repeat("x", events.MaxSize)

	tests := []struct {
		name, subject string
		body          []byte
		field, label  string
	}{
		{"not JSON", viewSubject, []byte(`{"id": "x", "type": "share.viewed",`), "$", "malformed"},
		{"a JSON array", viewSubject, []byte(`[{"id": "x"}]`), "$", "malformed"},
		{"an unknown type", events.SubjectPre + "share.liked." + render,
			body(func(m map[string]any) { m["type"] = "share.liked" }), "type", "unknown_type"},
		{"a missing field", viewSubject,
			body(func(m map[string]any) { delete(m["data"].(map[string]any), "viewedAt") }), "data.viewedAt", "invalid_field"},
		{"an ill-typed field", viewSubject,
			body(func(m map[string]any) { m["data"].(map[string]any)["shareId"] = 42 }), "data.shareId", "invalid_field"},
		{"a bad UUID", events.Subject(events.TypeShareViewed, "not-a-uuid"),
			body(func(m map[string]any) { m["renderId"] = "not-a-uuid" }), "renderId", "invalid_field"},
		{"a bad timestamp", viewSubject,
			body(func(m map[string]any) { m["data"].(map[string]any)["viewedAt"] = "yesterday" }), "data.viewedAt", "invalid_field"},
		{"over 64 KiB", huge.Subject(), huge.Body(), "$", "malformed"},
		{"a subject that does not match the body", events.Subject(events.TypeShareViewed, eventstest.NewUUID()),
			body(func(map[string]any) {}), "subject", "bad_subject"},
	}

	r := e.start(t)
	views := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := metric(t, r.reg, "sharesd_events_deadlettered_total", "reason", tt.label)
			msgID := "bad-" + eventstest.NewUUID()
			seq := natstest.Publish(t, e.js, tt.subject, tt.body, msgID)
			e.waitApplied(t, e.publish(t, eventstest.ShareViewed(project, render, "s1")), r)
			views++

			e.wantClicks(t, project, render, map[string]int{"s1": views})
			dl := e.deadLetterOf(t, seq)
			if dl == nil {
				t.Fatalf("event at seq %d not dead-lettered", seq)
			}
			checkDeadLetter(t, dl, tt.subject, tt.body, msgID, seq, tt.field)
			if got := metric(t, r.reg, "sharesd_events_deadlettered_total", "reason", tt.label) - before; got != 1 {
				t.Fatalf("sharesd_events_deadlettered_total{reason=%q} rose by %v, want 1", tt.label, got)
			}
		})
	}

	// Every bad event was copied exactly once, and nothing else was.
	if got, want := len(e.deadLetters(t)), len(tests); got != want {
		t.Fatalf("%d dead letters, want %d", got, want)
	}
	e.wantClicks(t, project, render, map[string]int{"s1": len(tests)})
	// The counter has exactly these series: nothing else was dead-lettered.
	want := map[string]float64{"bad_subject": 1, "invalid_field": 4, "malformed": 3, "unknown_type": 1}
	if got := series(t, r.reg, "sharesd_events_deadlettered_total", "reason"); !maps.Equal(got, want) {
		t.Fatalf("sharesd_events_deadlettered_total by reason = %v, want %v", got, want)
	}
}
