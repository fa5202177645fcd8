package projector_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
)

func ptr(s string) *string { return &s }

// TestContract checks each row of the event contract through a running
// projector: what every event type does to the lists and keys.
func TestContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t)
	ctx := context.Background()

	t.Run("render.created lists a render without shares as empty", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		e.waitApplied(t, e.publish(t, eventstest.RenderCreated(project, render)), r)
		l, err := e.list(t, project, render)
		if err != nil {
			t.Fatalf("list: %v, want an empty list", err)
		}
		if len(l) != 0 {
			t.Fatalf("list = %+v, want none", l)
		}
		if _, err := e.list(t, eventstest.NewUUID(), render); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("list from another project: %v, want ErrNotFound", err)
		}
		if _, err := e.list(t, project, eventstest.NewUUID()); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("list of an unknown render: %v, want ErrNotFound", err)
		}
	})

	t.Run("share.created lists every field, normalised", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		full := eventstest.ShareCreated(project, render, "share-email", "2026-06-05T12:05:00.123456+02:00")
		full.Data["channel"] = "email"
		full.Data["recipientEmail"] = "ada@example.com"
		full.Data["message"] = "Here is \"your\" file — ✓\n"
		full.Data["expiresAt"] = "2026-12-31T23:59:59.999999+01:00"
		full.Data["shareToken"] = "cks_email_token"
		// Tie on createdAt with tie-b: ids descending.
		tieA := eventstest.ShareCreated(project, render, "tie-a", "2026-06-05T09:00:00Z")
		tieB := eventstest.ShareCreated(project, render, "tie-b", "2026-06-05T09:00:00.000900Z")
		seq := e.publish(t, tieA, full, tieB)
		e.waitApplied(t, seq, r)

		got := e.mustList(t, project, render)
		want := []share{{
			ID: "share-email", Channel: "email", RecipientEmail: ptr("ada@example.com"),
			Message: ptr("Here is \"your\" file — ✓\n"), ExpiresAt: ptr("2026-12-31T22:59:59.999Z"),
			CreatedAt: "2026-06-05T10:05:00.123Z", ShareToken: "cks_email_token",
			ShareURL: defaultBase + "/share/cks_email_token",
		}, {
			ID: "tie-b", Channel: "link", CreatedAt: "2026-06-05T09:00:00.000Z",
			ShareToken: "cks_tie-b", ShareURL: defaultBase + "/share/cks_tie-b",
		}, {
			ID: "tie-a", Channel: "link", CreatedAt: "2026-06-05T09:00:00.000Z",
			ShareToken: "cks_tie-a", ShareURL: defaultBase + "/share/cks_tie-a",
		}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("list =\n%+v\nwant\n%+v", got, want)
		}
	})

	t.Run("share.revoked sets revokedAt and reason", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		seq := e.publish(t,
			eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
			eventstest.ShareCreated(project, render, "s2", "2026-06-05T10:01:00Z"),
			eventstest.ShareCreated(project, render, "s3", "2026-06-05T10:02:00Z"),
			eventstest.ShareRevoked(project, render, "s1", "2026-06-05T13:00:00.5+02:00", "revoked_by_partner"),
			eventstest.ShareRevoked(project, render, "s2", "2026-06-05T11:00:00Z", nil),
		)
		e.waitApplied(t, seq, r)
		got := map[string][2]*string{}
		for _, s := range e.mustList(t, project, render) {
			got[s.ID] = [2]*string{s.RevokedAt, s.RevokedReason}
		}
		want := map[string][2]*string{
			"s1": {ptr("2026-06-05T11:00:00.500Z"), ptr("revoked_by_partner")},
			"s2": {ptr("2026-06-05T11:00:00.000Z"), nil},
			"s3": {nil, nil},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("revocations = %s, want %s", showRevocations(got), showRevocations(want))
		}
	})

	t.Run("share.viewed counts clicks", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
			eventstest.ShareCreated(project, render, "s2", "2026-06-05T10:01:00Z"))
		var seq uint64
		for range 3 {
			seq = e.publish(t, eventstest.ShareViewed(project, render, "s1"))
		}
		e.waitApplied(t, seq, r)
		e.wantClicks(t, project, render, map[string]int{"s1": 3, "s2": 0})
	})

	t.Run("render.deleted answers not found and drops the render's data", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		seq := e.publish(t, eventstest.RenderCreated(project, render),
			eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
			eventstest.ShareViewed(project, render, "s1"),
			eventstest.ShareRevoked(project, render, "s1", "2026-06-05T11:00:00Z", nil))
		e.waitApplied(t, seq, r)
		if keys := e.renderKeys(t, render); len(keys) < 4 {
			t.Fatalf("before deletion: %d keys of the render, want the render's 4 or more", len(keys))
		}
		seq = e.publish(t, eventstest.RenderDeleted(project, render))
		e.waitApplied(t, seq, r)
		if _, err := e.list(t, project, render); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("list after render.deleted: %v, want ErrNotFound", err)
		}
		wantOnlyTombstone(t, e.renderKeys(t, render))

		// Events for the deleted render change nothing and bring no data back.
		seq = e.publish(t, eventstest.ShareCreated(project, render, "s2", "2026-06-05T12:00:00Z"),
			eventstest.ShareViewed(project, render, "s1"), eventstest.RenderCreated(project, render))
		e.waitApplied(t, seq, r)
		if _, err := e.list(t, project, render); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("list after more events for the deleted render: %v, want ErrNotFound", err)
		}
		wantOnlyTombstone(t, e.renderKeys(t, render))
	})

	t.Run("apikey.created and apikey.revoked", func(t *testing.T) {
		project, keyID := eventstest.NewUUID(), "key_"+strings.ReplaceAll(eventstest.NewUUID(), "-", "")
		key := "ck_test_" + keyID
		hash := events.KeyHash(key)
		if _, err := e.store.Key(ctx, hash); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("key before apikey.created: %v, want ErrNotFound", err)
		}
		e.waitApplied(t, e.publish(t, eventstest.APIKeyCreated(project, keyID, key, "test")), r)
		got, err := e.store.Key(ctx, hash)
		if err != nil {
			t.Fatalf("key after apikey.created: %v", err)
		}
		if want := (readmodel.Key{ID: keyID, ProjectID: project, Environment: "test"}); got != want {
			t.Fatalf("key = %+v, want %+v", got, want)
		}

		// A second apikey.created for the key id does not replace its hash.
		otherKey := "ck_live_other_" + keyID
		other := events.KeyHash(otherKey)
		e.waitApplied(t, e.publish(t, eventstest.APIKeyCreated(project, keyID, otherKey, "live")), r)
		if _, err := e.store.Key(ctx, other); !errors.Is(err, readmodel.ErrNotFound) {
			t.Fatalf("second hash of the key: %v, want ErrNotFound (the first apikey.created wins)", err)
		}

		e.waitApplied(t, e.publish(t, eventstest.APIKeyRevoked(project, keyID)), r)
		got, err = e.store.Key(ctx, hash)
		if err != nil {
			t.Fatalf("key after apikey.revoked: %v", err)
		}
		if want := (readmodel.Key{ID: keyID, ProjectID: project, Environment: "test", Revoked: true}); got != want {
			t.Fatalf("key = %+v, want %+v", got, want)
		}
	})

	t.Run("project.updated sets and clears the share base", func(t *testing.T) {
		project, render := eventstest.NewUUID(), eventstest.NewUUID()
		seq := e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"),
			eventstest.ProjectUpdated(project, "https://share.example.com/"))
		e.waitApplied(t, seq, r)
		l, err := e.store.List(ctx, project, render, nil)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if got, want := l.ShareBase, "https://share.example.com"; got != want {
			t.Fatalf("ShareBase = %q, want %q", got, want)
		}
		if got, want := decodeList(t, l)[0].ShareURL, "https://share.example.com/share/cks_s1"; got != want {
			t.Fatalf("shareUrl = %q, want %q", got, want)
		}
		// Another project's render keeps the default.
		other := eventstest.NewUUID()
		e.waitApplied(t, e.publish(t, eventstest.RenderCreated(eventstest.NewUUID(), other)), r)

		e.waitApplied(t, e.publish(t, eventstest.ProjectUpdated(project, nil)), r)
		l, err = e.store.List(ctx, project, render, nil)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if l.ShareBase != "" {
			t.Fatalf("ShareBase after a null shareBase = %q, want \"\" (the default)", l.ShareBase)
		}
		if got, want := decodeList(t, l)[0].ShareURL, defaultBase+"/share/cks_s1"; got != want {
			t.Fatalf("shareUrl = %q, want %q", got, want)
		}
	})
}

// wantOnlyTombstone checks that of a deleted render's keys only its render
// hash (project, seq, deleted) is left.
func wantOnlyTombstone(t testing.TB, keys []string) {
	t.Helper()
	if len(keys) != 1 || !strings.HasSuffix(keys[0], " render") {
		t.Fatalf("keys of the deleted render = %q, want only its render hash", keys)
	}
}

func showRevocations(m map[string][2]*string) string {
	var b strings.Builder
	for id, v := range m {
		b.WriteString(id + "=(")
		for i, p := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			if p == nil {
				b.WriteString("null")
			} else {
				b.WriteString(*p)
			}
		}
		b.WriteString(") ")
	}
	return b.String()
}
