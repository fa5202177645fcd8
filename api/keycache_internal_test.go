package api

import (
	"context"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// gatedStore is a real store whose key lookups, once read from Redis, wait
// for the test to let them return.
type gatedStore struct {
	*readmodel.Store
	read chan struct{} // a lookup has its answer
	gate chan struct{} // let it return
}

func (s *gatedStore) Key(ctx context.Context, hash string) (readmodel.Key, error) {
	k, err := s.Store.Key(ctx, hash)
	s.read <- struct{}{}
	<-s.gate
	return k, err
}

// TestKeyCacheLookupAcrossInvalidation checks the race a cache of lookups
// must not lose: a lookup that read a key before its revocation and
// returns after the revocation was announced answers what it read, but is
// not kept; the next lookup asks Redis and sees the revocation. It also
// checks that a lookup started while the subscription was down is not kept
// when the subscription comes back meanwhile.
func TestKeyCacheLookupAcrossInvalidation(t *testing.T) {
	t.Parallel()
	const key = "ck_live_read_across_a_revocation"
	ctx := context.Background()
	srv := redistest.Start(t)
	store := readmodel.New(srv.Client(t), time.Hour)
	if err := store.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	gen := readmodel.NewGen(time.Now())
	if ok, err := store.Activate(ctx, gen, ""); err != nil || !ok {
		t.Fatalf("activate: ok=%v err=%v", ok, err)
	}
	var seq uint64
	apply := func(e eventstest.Event) {
		t.Helper()
		seq++
		if _, _, err := store.Apply(ctx, gen, []readmodel.Op{{Seq: seq, Time: time.Now(), Event: e.Decode(t)}}, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	apply(eventstest.APIKeyCreated(eventstest.UUID(1), "key_1", key, "live"))
	gated := &gatedStore{Store: store, read: make(chan struct{}), gate: make(chan struct{})}
	c := newKeyCache(gated, 10)
	hash := events.KeyHash(key)

	// lookup runs a lookup that is held once read, runs between, then
	// lets it return and returns what it answered.
	lookup := func(between func()) readmodel.Key {
		got := make(chan readmodel.Key)
		go func() {
			k, err := c.get(ctx, hash)
			if err != nil {
				t.Error(err)
			}
			got <- k
		}()
		<-gated.read
		between()
		gated.gate <- struct{}{}
		return <-got
	}
	// then is a lookup that is not held.
	then := func() readmodel.Key {
		go func() { <-gated.read; gated.gate <- struct{}{} }()
		k, err := c.get(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	c.follow(readmodel.AppliedPos{}) // subscribed: live
	k := lookup(func() {
		apply(eventstest.APIKeyRevoked(eventstest.UUID(1), "key_1"))
		c.follow(readmodel.AppliedPos{Seq: seq, Announced: true, Keys: true})
	})
	if k.Revoked {
		t.Fatal("the held lookup read after the revocation; the test needs it read before")
	}
	if k := then(); !k.Revoked {
		t.Error("after the revocation was announced: the lookup read before it was kept")
	}

	c.follow(readmodel.AppliedPos{Lost: true})
	k = lookup(func() { c.follow(readmodel.AppliedPos{}) }) // live again meanwhile
	if !k.Revoked {
		t.Fatal("a lookup after the revocation: not revoked")
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n != 0 {
		t.Errorf("a lookup started while the subscription was down was kept: %d entries, want 0", n)
	}
}
