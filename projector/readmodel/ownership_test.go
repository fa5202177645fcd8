package readmodel

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
)

// TestRegistrationDecidesTheProject checks that a render belongs to the
// project whose render.created or share.created registers it: events of
// other projects before the registration are held apart, never count for
// the owner and are listed for dead-lettering when it registers; the
// owner's own early views and revocations count.
func TestRegistrationDecidesTheProject(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	foreignView := f.op(eventstest.ShareViewed(projectB, renderA, "s1"), time.Time{})
	foreignDelete := f.op(eventstest.RenderDeleted(projectB, renderA), time.Time{})
	ownView := f.op(eventstest.ShareViewed(projectA, renderA, "s1"), time.Time{})
	ownRevoke := f.op(eventstest.ShareRevoked(projectA, renderA, "s1", "2026-06-05T11:00:00Z", "early"), time.Time{})
	foreignRevoke := f.op(eventstest.ShareRevoked(projectB, renderA, "s1", "2026-06-05T10:30:00Z", "theirs"), time.Time{})
	got := f.applyOps(f.gen, foreignView, foreignDelete, ownView, ownRevoke, foreignRevoke)
	if want := []Outcome{Pending, Pending, Pending, Pending, Pending}; !slices.Equal(got, want) {
		t.Fatalf("before registration: %v, want %v", got, want)
	}
	if _, _, err := f.list(projectA, renderA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unregistered render: %v, want ErrNotFound", err)
	}

	created := f.op(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"), time.Time{})
	res := f.applyResults(f.gen, created)
	want := Result{Outcome: Applied, Rejects: []uint64{foreignView.Seq, foreignDelete.Seq, foreignRevoke.Seq}}
	slices.Sort(res[0].Rejects)
	if !reflect.DeepEqual(res[0], want) {
		t.Fatalf("registration = %+v, want %+v", res[0], want)
	}
	list, _ := f.mustList(projectA, renderA)
	if got, want := summary(list), []string{`s1 2026-06-05T10:00:00.000Z clicks=1 revoked="2026-06-05T11:00:00.000Z"/"early" msg=null token=cks_s1`}; !slices.Equal(got, want) {
		t.Fatalf("list = %v, want %v: the owner's early view and revocation count, project B's events do not", got, want)
	}

	t.Run("a redelivered registration lists the foreign events again", func(t *testing.T) {
		res := f.applyResults(f.gen, created)
		slices.Sort(res[0].Rejects)
		if want := (Result{Outcome: Stale, Rejects: want.Rejects}); !reflect.DeepEqual(res[0], want) {
			t.Fatalf("redelivery = %+v, want %+v", res[0], want)
		}
	})
	t.Run("a redelivered foreign event is StaleMismatch", func(t *testing.T) {
		if out := f.applyOps(f.gen, foreignView); out[0] != StaleMismatch {
			t.Fatalf("redelivery = %v, want %v", out[0], StaleMismatch)
		}
	})
	t.Run("project B is rejected from then on", func(t *testing.T) {
		if out := f.apply(eventstest.RenderCreated(projectB, renderA)); out[0] != Mismatch {
			t.Fatalf("render.created of B = %v, want %v", out[0], Mismatch)
		}
	})
}

// TestForeignEventsFirstNeverLockOut checks the attack of issue 8: another
// project's share.viewed and render.deleted for a render id that is not
// registered yet must not lock out the project that registers it.
func TestForeignEventsFirstNeverLockOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	f.apply(eventstest.ShareViewed(projectB, renderA, "s1"), eventstest.RenderDeleted(projectB, renderA))
	got := f.apply(eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareViewed(projectA, renderA, "s1"))
	if want := []Outcome{Applied, Applied, Applied}; !slices.Equal(got, want) {
		t.Fatalf("the owner's events: %v, want %v", got, want)
	}
	list, _ := f.mustList(projectA, renderA)
	if got, want := summary(list), []string{`s1 2026-06-05T10:00:00.000Z clicks=1 revoked=null/null msg=null token=cks_s1`}; !slices.Equal(got, want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	if _, _, err := f.list(projectB, renderA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("project B reads the render: %v, want ErrNotFound", err)
	}
}

// TestOwnDeleteBeforeRegistration checks that the owner's render.deleted,
// sent before the render was registered, deletes it at registration.
func TestOwnDeleteBeforeRegistration(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	f.apply(eventstest.ShareViewed(projectB, renderA, "s1"), eventstest.RenderDeleted(projectA, renderA))
	res := f.applyResults(f.gen, f.op(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"), time.Time{}))
	if res[0].Outcome != Ignored || len(res[0].Rejects) != 1 {
		t.Fatalf("registration = %+v, want Ignored with project B's view listed", res[0])
	}
	if _, _, err := f.list(projectA, renderA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted render: %v, want ErrNotFound", err)
	}
	if out := f.apply(eventstest.ShareCreated(projectB, renderA, "s2", "2026-06-05T10:00:00Z")); out[0] != Mismatch {
		t.Fatalf("project B after the tombstone: %v, want %v", out[0], Mismatch)
	}
}

// TestPendingDedupeIsPerProject checks that a foreign event cannot use an
// event id to make the owner's event with the same id a duplicate.
func TestPendingDedupeIsPerProject(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	got := f.apply(eventstest.ShareViewed(projectB, renderA, "s1").WithID("same"), eventstest.ShareViewed(projectA, renderA, "s1").WithID("same"),
		eventstest.ShareViewed(projectA, renderA, "s1").WithID("same"))
	if want := []Outcome{Pending, Pending, Duplicate}; !slices.Equal(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	f.apply(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	if got := f.apply(eventstest.ShareViewed(projectA, renderA, "s1").WithID("same")); got[0] != Duplicate {
		t.Fatalf("the owner's id after registration: %v, want %v (its early copy is remembered)", got[0], Duplicate)
	}
	list, _ := f.mustList(projectA, renderA)
	if list[0].ClickCount != 1 {
		t.Fatalf("clickCount = %d, want 1", list[0].ClickCount)
	}
}

// TestKeyHashBelongsToItsFirstKeyID checks that a key hash belongs for good
// to the first key id that registered it: another key id with the same
// hash, in any project, gets no key and answers HashTaken, and a
// revocation touches only its own key id.
func TestKeyHashBelongsToItsFirstKeyID(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	const key = "ck_live_readmodel_owned_key"
	lookup := func() Key {
		t.Helper()
		k, err := f.store.Key(ctx, events.KeyHash(key))
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		return k
	}
	owner := Key{ID: "key_1", ProjectID: projectA, Environment: "live"}
	if out := f.apply(eventstest.APIKeyCreated(projectA, "key_1", key, "live")); out[0] != Applied {
		t.Fatalf("apikey.created: %v", out[0])
	}

	steps := []struct {
		name string
		ev   eventstest.Event
		want Outcome
		key  Key
	}{
		{"another project cannot bind the key to itself", eventstest.APIKeyCreated(projectB, "key_b", key, "live"), HashTaken, owner},
		{"nor can the same project under another key id", eventstest.APIKeyCreated(projectA, "key_2", key, "test"), HashTaken, owner},
		{"revoking the intruding key id does not revoke the key", eventstest.APIKeyRevoked(projectB, "key_b"), Applied, owner},
		{"the owner revokes", eventstest.APIKeyRevoked(projectA, "key_1"), Applied, Key{ID: "key_1", ProjectID: projectA, Environment: "live", Revoked: true}},
		{"a revoked key does not come back under a new key id", eventstest.APIKeyCreated(projectB, "key_c", key, "live"), HashTaken, Key{ID: "key_1", ProjectID: projectA, Environment: "live", Revoked: true}},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			op := f.op(st.ev, time.Time{})
			if out := f.applyOps(f.gen, op); out[0] != st.want {
				t.Fatalf("outcome = %v, want %v", out[0], st.want)
			}
			if got := lookup(); got != st.key {
				t.Fatalf("Key = %+v, want %+v", got, st.key)
			}
			if st.want == HashTaken {
				if out := f.applyOps(f.gen, op); out[0] != HashTaken {
					t.Fatalf("redelivery = %v, want %v again", out[0], HashTaken)
				}
			}
		}) {
			return
		}
	}
	t.Run("a key id refused for its hash stays without a key: its first creation decided it", func(t *testing.T) {
		const fresh = "ck_live_readmodel_fresh_key"
		if out := f.apply(eventstest.APIKeyCreated(projectA, "key_2", fresh, "live")); out[0] != Applied {
			t.Fatalf("apikey.created: %v, want %v (a later creation of a key id changes nothing)", out[0], Applied)
		}
		if k, err := f.store.Key(ctx, events.KeyHash(fresh)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Key = %+v, %v; want %v", k, err, ErrNotFound)
		}
	})
}
