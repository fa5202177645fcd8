package eventstest_test

import (
	"testing"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
)

const (
	project = "0b6c7c0e-8a1f-4c7e-9d2a-3e4f5a6b7c8d"
	render  = "5b3e8f20-9a4d-4c6b-8e2f-1d7a6b5c4e32"
)

// TestBuilders checks that each builder makes a well-formed event of its
// type, one per type of the contract, that decodes on the subject events'
// rules give it, with its id.
func TestBuilders(t *testing.T) {
	t.Parallel()
	built := map[events.Type]eventstest.Event{}
	for _, e := range []eventstest.Event{
		eventstest.RenderCreated(project, render),
		eventstest.RenderDeleted(project, render),
		eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareRevoked(project, render, "s1", "2026-06-06T00:00:00Z", "spam"),
		eventstest.ShareViewed(project, render, "s1"),
		eventstest.APIKeyCreated(project, "key-1", "ck_live_x", events.EnvLive),
		eventstest.APIKeyRevoked(project, "key-1"),
		eventstest.ProjectUpdated(project, "https://share.example.com"),
	} {
		built[e.Type] = e
		ev := e.Decode(t)
		if got, want := ev.Subject(), e.Subject(); got != want {
			t.Errorf("%s: decoded subject = %q, built %q", e.Type, got, want)
		}
		if ev.ID != e.ID || ev.ProjectID != project {
			t.Errorf("%s: decoded id %q project %q, want %q %q", e.Type, ev.ID, ev.ProjectID, e.ID, project)
		}
	}
	for _, typ := range events.Types {
		if _, ok := built[typ]; !ok {
			t.Errorf("no builder for %s", typ)
		}
	}
}

func TestWith(t *testing.T) {
	t.Parallel()
	e := eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z")
	changed := e.With("message", "hi").WithID("same")
	if e.Data["message"] != nil || e.ID == "same" {
		t.Fatalf("With changed the original: %v %q", e.Data, e.ID)
	}
	ev := changed.Decode(t)
	if got := ev.Data.(*events.ShareCreated).Message; got == nil || *got != "hi" {
		t.Fatalf("message = %v, want hi", got)
	}
	if ev.ID != "same" {
		t.Fatalf("id = %q, want same", ev.ID)
	}
	if a, b := eventstest.ShareViewed(project, render, "s1"), eventstest.ShareViewed(project, render, "s1"); a.ID == b.ID {
		t.Fatalf("two builds share the id %q, want distinct events", a.ID)
	}
}
