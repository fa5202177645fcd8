package projector_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// TestSemantics checks the rules the read model holds whatever JetStream
// delivers: each event counts once, first writes win, views are kept, and
// data never crosses projects.
func TestSemantics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t)

	t.Run("an event published twice with the same Nats-Msg-Id counts once", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"))
		view := eventstest.ShareViewed(project, render, "s1")
		first, second := e.publish(t, view), e.publish(t, view)
		if first != second {
			t.Fatalf("JetStream stored the copy at %d and %d, want it deduplicated", first, second)
		}
		e.waitApplied(t, e.publish(t, eventstest.ShareViewed(project, render, "s1")), r)
		e.wantClicks(t, project, render, map[string]int{"s1": 2})
	})

	t.Run("an event id republished under another Nats-Msg-Id counts once", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"))
		view := eventstest.ShareViewed(project, render, "s1")
		before := metric(t, r.reg, "sharesd_events_applied_total", "type", "share.viewed", "outcome", "duplicate")
		first := natstest.Publish(t, e.js, view.Subject(), view.Body(), "publisher-try-1")
		second := natstest.Publish(t, e.js, view.Subject(), view.Body(), "publisher-try-2")
		if first == second {
			t.Fatalf("both copies at %d: JetStream deduplicated them, the test needs two", first)
		}
		e.waitApplied(t, second, r)
		e.wantClicks(t, project, render, map[string]int{"s1": 1})
		if got := metric(t, r.reg, "sharesd_events_applied_total", "type", "share.viewed", "outcome", "duplicate") - before; got != 1 {
			t.Fatalf("duplicate outcomes = %v, want 1", got)
		}
	})

	t.Run("a second share.created for a share changes nothing", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		again := eventstest.ShareCreated(project, render, "s1", "2027-01-01T00:00:00Z")
		again.Data["channel"], again.Data["shareToken"], again.Data["message"] = "email", "cks_other", "second"
		seq := e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"), again)
		e.waitApplied(t, seq, r)
		l := e.mustList(t, project, render)
		want := share{ID: "s1", Channel: "link", CreatedAt: "2026-06-05T10:00:00.000Z",
			ShareToken: "cks_s1", ShareURL: defaultBase + "/share/cks_s1"}
		if len(l) != 1 || l[0] != want {
			t.Fatalf("list = %+v, want [%+v]", l, want)
		}
	})

	t.Run("the first revocation wins", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		seq := e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
			eventstest.ShareRevoked(project, render, "s1", "2026-06-05T11:00:00Z", "revoked_by_partner"),
			eventstest.ShareRevoked(project, render, "s1", "2026-06-05T12:00:00Z", "expired"),
			eventstest.ShareRevoked(project, render, "s1", "2026-06-05T13:00:00Z", nil))
		e.waitApplied(t, seq, r)
		l := e.mustList(t, project, render)
		if len(l) != 1 || l[0].RevokedAt == nil || *l[0].RevokedAt != "2026-06-05T11:00:00.000Z" ||
			l[0].RevokedReason == nil || *l[0].RevokedReason != "revoked_by_partner" {
			t.Fatalf("list = %+v, want s1 revoked at 11:00 for revoked_by_partner", l)
		}
	})

	t.Run("views of a revoked share count", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		seq := e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
			eventstest.ShareViewed(project, render, "s1"),
			eventstest.ShareRevoked(project, render, "s1", "2026-06-05T11:00:00Z", nil),
			eventstest.ShareViewed(project, render, "s1"), eventstest.ShareViewed(project, render, "s1"))
		e.waitApplied(t, seq, r)
		e.wantClicks(t, project, render, map[string]int{"s1": 3})
	})

	t.Run("views before share.created show once it exists", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		seq := e.publish(t, eventstest.RenderCreated(project, render),
			eventstest.ShareViewed(project, render, "s1"), eventstest.ShareViewed(project, render, "s1"),
			eventstest.ShareViewed(project, render, "s2"))
		e.waitApplied(t, seq, r)
		e.wantClicks(t, project, render, map[string]int{})
		e.waitApplied(t, e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z")), r)
		e.wantClicks(t, project, render, map[string]int{"s1": 2})
		e.waitApplied(t, e.publish(t, eventstest.ShareViewed(project, render, "s1"),
			eventstest.ShareCreated(project, render, "s2", "2026-06-05T10:01:00Z")), r)
		e.wantClicks(t, project, render, map[string]int{"s1": 3, "s2": 1})
	})

	t.Run("share.created registers an unknown render under its projectId", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		e.waitApplied(t, e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z")), r)
		e.wantClicks(t, project, render, map[string]int{"s1": 0})
		if _, err := e.list(t, eventstest.NewUUID(), render); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("list from another project: %v, want ErrNotFound", err)
		}
	})

	t.Run("an event of another project is rejected and dead-lettered", func(t *testing.T) {
		project, other, render := eventstest.NewUUID(), eventstest.NewUUID(), eventstest.NewUUID()
		before := metric(t, r.reg, "sharesd_events_deadlettered_total", "reason", "project_mismatch")
		e.publish(t, eventstest.RenderCreated(project, render), eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
			eventstest.ShareViewed(project, render, "s1"))
		foreign := []eventstest.Event{
			eventstest.ShareCreated(other, render, "s2", "2026-06-05T10:01:00Z"),
			eventstest.ShareViewed(other, render, "s1"),
			eventstest.ShareRevoked(other, render, "s1", "2026-06-05T11:00:00Z", "stolen"),
			eventstest.RenderDeleted(other, render),
		}
		seqs := make([]uint64, len(foreign))
		for i, ev := range foreign {
			seqs[i] = e.publish(t, ev)
		}
		e.waitApplied(t, e.publish(t, eventstest.ShareViewed(project, render, "s1")), r)

		l := e.mustList(t, project, render)
		if len(l) != 1 || l[0].ID != "s1" || l[0].ClickCount != 2 || l[0].RevokedAt != nil {
			t.Fatalf("list = %+v, want only s1, unrevoked, with 2 clicks", l)
		}
		if _, err := e.list(t, other, render); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("list from the other project: %v, want ErrNotFound", err)
		}
		for i, seq := range seqs {
			dl := e.deadLetterOf(t, seq)
			if dl == nil {
				t.Fatalf("%s of another project (seq %d) not dead-lettered", foreign[i].Type, seq)
			}
			checkDeadLetter(t, dl, foreign[i].Subject(), foreign[i].Body(), foreign[i].ID, seq, "projectId")
		}
		if got := metric(t, r.reg, "sharesd_events_deadlettered_total", "reason", "project_mismatch") - before; got != float64(len(foreign)) {
			t.Fatalf("project_mismatch dead letters = %v, want %d", got, len(foreign))
		}
	})

	t.Run("an API key event of another project is rejected", func(t *testing.T) {
		project, keyID := eventstest.NewUUID(), "key_"+eventstest.NewUUID()[:8]
		key := "ck_live_" + keyID
		hash := events.KeyHash(key)
		e.publish(t, eventstest.APIKeyCreated(project, keyID, key, "live"))
		seq := e.publish(t, eventstest.APIKeyRevoked(eventstest.NewUUID(), keyID))
		e.waitApplied(t, seq, r)
		k, err := e.store.Key(t.Context(), hash)
		if err != nil {
			t.Fatalf("key: %v", err)
		}
		if k.Revoked || k.ProjectID != project {
			t.Fatalf("key = %+v, want it unrevoked in project %s", k, project)
		}
		if e.deadLetterOf(t, seq) == nil {
			t.Fatalf("apikey.revoked of another project (seq %d) not dead-lettered", seq)
		}
	})

	t.Run("interleaved renders", func(t *testing.T) {
		project := eventstest.NewUUID()
		evs := workload(project, 4, 5, 3)
		e.publishAsync(t, evs)
		e.waitApplied(t, e.lastSeq(t), r)
		modelOf(project, evs).check(t, e)
	})
}

// checkDeadLetter checks a dead letter's body and origin headers.
func checkDeadLetter(t testing.TB, dl *jetstream.RawStreamMsg, subject string, body []byte, msgID string, seq uint64, field string) {
	t.Helper()
	if got, want := dl.Subject, events.DeadLetterPre+subject; got != want {
		t.Errorf("dead letter subject = %q, want %q", got, want)
	}
	if string(dl.Data) != string(body) {
		t.Errorf("dead letter body = %.200q, want the original %.200q", dl.Data, body)
	}
	for h, want := range map[string]string{
		projector.HeaderField:   field,
		projector.HeaderSubject: subject,
		projector.HeaderStream:  events.Stream,
		projector.HeaderSeq:     itoa(seq),
		projector.HeaderMsgID:   msgID,
	} {
		if got := dl.Header.Get(h); got != want {
			t.Errorf("dead letter header %s = %q, want %q", h, got, want)
		}
	}
	if dl.Header.Get(projector.HeaderReason) == "" {
		t.Errorf("dead letter has no %s header", projector.HeaderReason)
	}
	if dl.Header.Get(projector.HeaderTime) == "" {
		t.Errorf("dead letter has no %s header", projector.HeaderTime)
	}
}
