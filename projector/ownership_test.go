package projector_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// TestRenderOwnedByItsRegistration publishes, for a render id that is not
// registered yet, another project's view and deletion, then the owner's
// early view and its registration: the owner is not locked out, its early
// view counts, the other project's events never count and are each
// dead-lettered once (project_mismatch), even across a restart that replays
// the registration.
func TestRenderOwnedByItsRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner, intruder, render := eventstest.NewUUID(), eventstest.NewUUID(), eventstest.NewUUID()
	foreignView := e.publish(t, eventstest.ShareViewed(intruder, render, "s1"))
	foreignDelete := e.publish(t, eventstest.RenderDeleted(intruder, render))
	e.publish(t, eventstest.ShareViewed(owner, render, "s1"))
	r := e.start(t)
	seq := e.publish(t, eventstest.RenderCreated(owner, render), eventstest.ShareCreated(owner, render, "s1", "2026-06-05T10:00:00Z"))
	e.waitApplied(t, seq, r)

	e.wantClicks(t, owner, render, map[string]int{"s1": 1})
	if _, err := e.list(t, intruder, render); err == nil {
		t.Fatal("the intruding project reads the render, want not found")
	}
	wantDead := func(t *testing.T) {
		t.Helper()
		polltest.WaitFor(t, 10*time.Second, func() error {
			for _, s := range []uint64{foreignView, foreignDelete} {
				n := 0
				for _, m := range e.deadLetters(t) {
					if m.Header.Get(projector.HeaderSeq) == itoa(s) {
						n++
						if got := m.Header.Get(projector.HeaderCode); got != "project_mismatch" {
							return fmt.Errorf("dead letter of seq %d has code %q, want project_mismatch", s, got)
						}
					}
				}
				if n != 1 {
					return fmt.Errorf("seq %d dead-lettered %d times, want once", s, n)
				}
			}
			return nil
		})
	}
	wantDead(t)

	t.Run("a replay of the registration dead-letters nothing twice", func(t *testing.T) {
		r.stop(t)
		ctl, err := e.store.ReadControl(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.Rewind(context.Background(), ctl.Active, 0); err != nil {
			t.Fatal(err)
		}
		r = e.start(t)
		e.waitApplied(t, e.publish(t, eventstest.ShareViewed(owner, render, "s1")), r)
		e.wantClicks(t, owner, render, map[string]int{"s1": 2})
		wantDead(t)
	})
}

// TestKeyHashNotReRegistered publishes an API key, then another project's
// apikey.created of the same hash under a new key id, and its revocation:
// the key still belongs to its owner and works, the intruding creation is
// dead-lettered as key_hash_taken; after the owner revokes it, a new key id
// with its hash does not bring it back.
func TestKeyHashNotReRegistered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner, intruder := eventstest.NewUUID(), eventstest.NewUUID()
	key := "ck_live_" + eventstest.NewUUID()
	hash := events.KeyHash(key)
	r := e.start(t)
	e.publish(t, eventstest.APIKeyCreated(owner, "key_owner", key, "live"))
	taken := e.publish(t, eventstest.APIKeyCreated(intruder, "key_intruder", key, "live"))
	e.waitApplied(t, e.publish(t, eventstest.APIKeyRevoked(intruder, "key_intruder")), r)

	lookup := func() readmodel.Key {
		t.Helper()
		k, err := e.store.Key(context.Background(), hash)
		if err != nil {
			t.Fatalf("key lookup: %v", err)
		}
		return k
	}
	if got, want := lookup(), (readmodel.Key{ID: "key_owner", ProjectID: owner, Environment: "live"}); got != want {
		t.Fatalf("key = %+v, want %+v", got, want)
	}
	dl := e.deadLetterOf(t, taken)
	if dl == nil || dl.Header.Get(projector.HeaderCode) != "key_hash_taken" || dl.Header.Get(projector.HeaderField) != "data.keyHash" {
		t.Fatalf("dead letter of the intruding apikey.created = %v, want code key_hash_taken at data.keyHash", dl)
	}

	e.publish(t, eventstest.APIKeyRevoked(owner, "key_owner"))
	e.waitApplied(t, e.publish(t, eventstest.APIKeyCreated(intruder, "key_again", key, "live")), r)
	if got := lookup(); !got.Revoked || got.ID != "key_owner" {
		t.Fatalf("key = %+v, want key_owner, revoked for good", got)
	}
}

// TestKeyHashTakenOverAcrossPartitions: two creations of one key hash under
// key ids in different partitions, applied out of stream order because the
// earlier one's partition lags (its lease held by a projector that died).
// The later creation binds the hash first; when the earlier one is applied
// it takes the hash over and the later creation is dead-lettered as
// key_hash_taken, as applying the stream in order would have done.
func TestKeyHashTakenOverAcrossPartitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const parts = 2
	e.store.SetPartitions(parts)
	ctx := context.Background()
	first, later := keyIDInPartition(t, 0, parts), keyIDInPartition(t, 1, parts)

	a := e.startWith(t, projector.Config{LeaseTTL: time.Second})
	// Once it runs live: while it builds the first generation it needs
	// every partition and would take back the one given to the dead one.
	e.waitApplied(t, e.publish(t, eventstest.RenderCreated(eventstest.NewUUID(), eventstest.NewUUID())), a)
	e.waitOwners(t, 1)
	// A projector that died holding the first creation's partition: its
	// lease runs out after ttl.
	const dead, ttl = "dead-projector", 8 * time.Second
	if _, err := e.store.RenewLeases(ctx, dead, ttl); err != nil {
		t.Fatal(err)
	}
	if err := e.store.ReleaseLeases(ctx, a.p.Token(), []int{0}, false); err != nil {
		t.Fatal(err)
	}
	if got, err := e.store.ClaimLeases(ctx, dead, ttl, 1); err != nil || !slices.Equal(got, []int{0}) {
		t.Fatalf("claim for the dead one: %v, %v; want [0]", got, err)
	}
	polltest.WaitFor(t, 10*time.Second, func() error {
		if parts := a.p.Status().Parts; !slices.Equal(parts, []int{1}) {
			return fmt.Errorf("the live projector applies partitions %v, want [1]", parts)
		}
		return nil
	})

	key := "ck_live_" + eventstest.NewUUID()
	hash := events.KeyHash(key)
	owner, intruder := eventstest.NewUUID(), eventstest.NewUUID()
	firstSeq := e.publish(t, eventstest.APIKeyCreated(owner, first, key, "live"))
	laterSeq := e.publish(t, eventstest.APIKeyCreated(intruder, later, key, "live"))
	lookup := func(want readmodel.Key) func() error {
		return func() error {
			got, err := e.store.Key(ctx, hash)
			if err != nil || got != want {
				return fmt.Errorf("key = %+v, %v; want %+v", got, err, want)
			}
			return nil
		}
	}
	// Before the dead lease runs out, only the later creation is applied.
	polltest.WaitFor(t, 20*time.Second, lookup(readmodel.Key{ID: later, ProjectID: intruder, Environment: "live"}))
	if owners, err := e.store.LeaseOwners(ctx); err != nil || owners[0] != dead {
		t.Fatalf("lease owners %q, %v: the dead one's lease ran out before the test could look", owners, err)
	}

	polltest.WaitFor(t, 20*time.Second, lookup(readmodel.Key{ID: first, ProjectID: owner, Environment: "live"}))
	e.waitApplied(t, laterSeq, a)
	dl := e.deadLetterOf(t, laterSeq)
	if dl == nil || dl.Header.Get(projector.HeaderCode) != events.CodeKeyHashTaken ||
		dl.Header.Get(projector.HeaderTrigger) != itoa(firstSeq) {
		t.Fatalf("dead letter of the later creation = %v, want key_hash_taken triggered by seq %d", dl, firstSeq)
	}
	if dl := e.deadLetterOf(t, firstSeq); dl != nil {
		t.Fatalf("the first creation was dead-lettered: %v", dl.Header)
	}
}

// keyIDInPartition returns a key id whose events fall in partition q of n.
func keyIDInPartition(t testing.TB, q, n int) string {
	t.Helper()
	for range 1000 {
		id := "key_" + eventstest.NewUUID()
		if events.PartitionOf(id, n) == q {
			return id
		}
	}
	t.Fatalf("no key id in partition %d of %d", q, n)
	return ""
}
