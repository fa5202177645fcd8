package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// otherKey is a second live key of project A, which the tests create.
const otherKey = "ck_live_second_key_of_project_a"

// countingStore is the API's store counting the key lookups and the list
// reads that reach Redis.
type countingStore struct {
	*readmodel.Store
	keys, lists atomic.Int64
}

func (s *countingStore) List(ctx context.Context, projectID, renderID string, have *readmodel.Versions) (*readmodel.List, error) {
	s.lists.Add(1)
	return s.Store.List(ctx, projectID, renderID, have)
}

func (s *countingStore) Key(ctx context.Context, hash string) (readmodel.Key, error) {
	s.keys.Add(1)
	return s.Store.Key(ctx, hash)
}

// follower is the API as sharesd wires it: its store follows the
// projector's announcements into Server.Follow. reports carries each
// report once the server has taken it in.
type follower struct {
	srv     *httptest.Server
	store   *countingStore
	reports chan readmodel.AppliedPos
}

// follow serves the API on its own Redis client, following the
// announcements, and returns once its subscription is live.
func (w *world) follow(cfg api.Config) *follower { return w.followWith(cfg, nil, nil) }

// followWith is follow with the API's store wrapped by wrap (when not nil),
// recording in metrics (when not nil).
func (w *world) followWith(cfg api.Config, wrap func(api.Store) api.Store, metrics *api.Metrics) *follower {
	w.t.Helper()
	cfg.Env, cfg.ShareBase = "live", defaultBase
	f := &follower{store: &countingStore{Store: w.apiStore()}, reports: make(chan readmodel.AppliedPos, 1024)}
	var store api.Store = f.store
	if wrap != nil {
		store = wrap(store)
	}
	h := api.NewServer(slog.New(slog.DiscardHandler), store, api.NewPositions(), metrics, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.store.FollowApplied(ctx, func(a readmodel.AppliedPos) {
			h.Follow(a)
			select {
			case f.reports <- a:
			case <-ctx.Done():
			}
		})
	}()
	w.t.Cleanup(func() { cancel(); <-done })
	f.srv = httptest.NewServer(h)
	w.t.Cleanup(f.srv.Close)
	f.wait(w.t, "a live subscription", live)
	return f
}

// live reports a (re)started subscription.
func live(a readmodel.AppliedPos) bool { return !a.Announced && !a.Lost }

// wait takes reports until one satisfies ok, for at most 10s.
func (f *follower) wait(t testing.TB, what string, ok func(readmodel.AppliedPos) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case a := <-f.reports:
			if ok(a) {
				return
			}
		case <-timeout:
			t.Fatalf("no report of %s within 10s", what)
		}
	}
}

// waitPos waits until the API has taken in a position at or beyond seq.
func (f *follower) waitPos(t testing.TB, seq uint64) {
	t.Helper()
	f.wait(t, fmt.Sprintf("position %d", seq), func(a readmodel.AppliedPos) bool { return a.Seq >= seq })
}

// TestKeyCacheRevocation checks that a key revoked is refused on the very
// first request after the API heard the revocation announced, however warm
// its cache, and that a key created after a miss is accepted on the first
// request after its creation was announced; and that meanwhile a key in
// use is answered from memory. A cache with a time-to-live fails the first
// check: it answers from memory until the entry expires.
func TestKeyCacheRevocation(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	f := w.follow(api.Config{})
	var worst time.Duration
	for round := range 20 {
		key, id := fmt.Sprintf("ck_live_revocation_round_%02d", round), fmt.Sprintf("key_round_%02d", round)
		if r := get(t, f.srv, renderA, key); r.status != http.StatusUnauthorized {
			t.Fatalf("round %d, before apikey.created: status %d, want 401", round, r.status)
		}
		w.apply(eventstest.APIKeyCreated(projectA, id, key, "live"))
		f.waitPos(t, w.seq)
		if r := get(t, f.srv, renderA, key); r.status != http.StatusOK {
			t.Fatalf("round %d, first request after apikey.created was announced: status %d, want 200", round, r.status)
		}
		before := f.store.keys.Load()
		for range 3 {
			if r := get(t, f.srv, renderA, key); r.status != http.StatusOK {
				t.Fatalf("round %d, warm: status %d, want 200", round, r.status)
			}
		}
		if n := f.store.keys.Load() - before; n != 0 {
			t.Errorf("round %d: a warm key was looked up in Redis %d times, want 0 (answered from memory)", round, n)
		}
		applied := time.Now()
		w.apply(eventstest.APIKeyRevoked(projectA, id))
		f.waitPos(t, w.seq)
		worst = max(worst, time.Since(applied))
		if r := get(t, f.srv, renderA, key); r.status != http.StatusUnauthorized {
			t.Fatalf("round %d, first request after apikey.revoked was announced: status %d, want 401", round, r.status)
		}
	}
	if worst > 500*time.Millisecond {
		t.Errorf("a revocation reached the API %v after it was applied, want within 500ms", worst)
	}
	t.Logf("slowest announcement of 20 revocations: %v after Apply returned", worst.Round(time.Microsecond))
}

// TestKeyCacheSubscriptionKilled checks that when the API's subscription
// is killed, a revocation applied before it subscribes again is never
// served a stale 200: the cache is emptied and lookups go to Redis until
// the subscription is live again. A time-to-live cache still answers the
// warm key from memory.
func TestKeyCacheSubscriptionKilled(t *testing.T) {
	t.Parallel()
	w := authWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_other", otherKey, "live"))
	f := w.follow(api.Config{})
	for range 3 {
		if r := get(t, f.srv, renderA, liveKey); r.status != http.StatusOK {
			t.Fatalf("warm: status %d, want 200", r.status)
		}
	}
	if err := w.redis.Client(t).ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "the subscription lost", func(a readmodel.AppliedPos) bool { return a.Lost })
	w.apply(eventstest.APIKeyRevoked(projectA, "key_live")) // announced to no one
	before := f.store.keys.Load()
	if r := get(t, f.srv, renderA, liveKey); r.status != http.StatusUnauthorized {
		t.Fatalf("after the revocation, subscription down: status %d, want 401", r.status)
	}
	for range 2 {
		if r := get(t, f.srv, renderA, otherKey); r.status != http.StatusOK {
			t.Fatalf("another key, subscription down: status %d, want 200", r.status)
		}
	}
	if got, want := f.store.keys.Load()-before, int64(3); got != want {
		t.Errorf("subscription down: %d lookups in Redis for 3 requests, want %d (none from memory)", got, want)
	}
	f.wait(t, "the subscription live again", live)
	if r := get(t, f.srv, renderA, liveKey); r.status != http.StatusUnauthorized {
		t.Fatalf("subscription live again: status %d, want 401", r.status)
	}
	before = f.store.keys.Load()
	for range 3 {
		get(t, f.srv, renderA, otherKey)
	}
	if got, want := f.store.keys.Load()-before, int64(1); got != want {
		t.Errorf("subscription live again: %d lookups in Redis for 3 requests, want %d (then from memory)", got, want)
	}
}

// TestKeyCacheRedisPaused checks that when Redis is paused (SIGSTOP: the
// subscription falls silent, its connection stays open) the API notices
// within about a second, stops answering keys from memory and answers 503
// fast, and after the resume serves the right answers and fills the cache
// again.
func TestKeyCacheRedisPaused(t *testing.T) {
	t.Parallel()
	w := authWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_other", otherKey, "live"))
	f := w.follow(api.Config{})
	if r := get(t, f.srv, renderA, liveKey); r.status != http.StatusOK {
		t.Fatalf("warm: status %d, want 200", r.status)
	}
	w.redis.Pause(t)
	paused := time.Now()
	f.wait(t, "the subscription lost", func(a readmodel.AppliedPos) bool { return a.Lost })
	if d := time.Since(paused); d > 2*time.Second {
		t.Errorf("the silent subscription was noticed %v after the pause, want within about a second", d)
	}
	before := f.store.keys.Load()
	start := time.Now()
	wantUnavailable(t, get(t, f.srv, renderA, liveKey))
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("answered after %v, want within 1.5s", d)
	}
	if got := f.store.keys.Load() - before; got != 1 {
		t.Errorf("paused: %d key lookups in Redis, want 1 (none from memory)", got)
	}
	w.redis.Resume(t)
	f.wait(t, "the subscription live again", live)
	w.apply(eventstest.APIKeyRevoked(projectA, "key_live"))
	f.waitPos(t, w.seq)
	if r := get(t, f.srv, renderA, liveKey); r.status != http.StatusUnauthorized {
		t.Fatalf("after the resume and a revocation: status %d, want 401", r.status)
	}
	before = f.store.keys.Load()
	for range 3 {
		if r := get(t, f.srv, renderA, otherKey); r.status != http.StatusOK {
			t.Fatalf("after the resume: status %d, want 200", r.status)
		}
	}
	if got := f.store.keys.Load() - before; got != 1 {
		t.Errorf("after the resume: %d lookups in Redis for 3 requests, want 1", got)
	}
}

// TestKeyCacheRace checks, with -race, that lookups running while keys are
// created and revoked never leave a stale entry: once a change is
// announced, every key answers as the reference model says, and a small
// cache (evicting all the time) never answers for another key.
func TestKeyCacheRace(t *testing.T) {
	t.Parallel()
	const nkeys, readers, changes = 6, 8, 60
	w := newWorld(t)
	w.apply(eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	f := w.follow(api.Config{KeyCacheSize: 4})
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("ck_live_race_key_%d", i)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ctx.Err() == nil; i++ {
				rep, err := fetch(f.srv, http.MethodGet, sharesPath(renderA), nil, "Authorization: Bearer "+keys[i%nkeys])
				if err != nil || rep.status != http.StatusOK && rep.status != http.StatusUnauthorized {
					errs <- fmt.Errorf("reader %d: %v, status %d", r, err, rep.status)
					return
				}
			}
		}()
	}
	// The model: a hash belongs for good to its first key id, so each key
	// is created once and revoked once.
	state := make([]int, nkeys) // 0 never created, 1 live, 2 revoked
	rng := rand.New(rand.NewPCG(11, 12))
	check := func(step int) {
		for i, key := range keys {
			want := http.StatusUnauthorized
			if state[i] == 1 {
				want = http.StatusOK
			}
			if r := get(t, f.srv, renderA, key); r.status != want {
				t.Fatalf("step %d, key %d (state %d): status %d, want %d", step, i, state[i], r.status, want)
			}
		}
	}
	for step := 0; step < changes; step++ {
		i := rng.IntN(nkeys)
		switch state[i] {
		case 0:
			w.apply(eventstest.APIKeyCreated(projectA, fmt.Sprintf("key_race_%d", i), keys[i], "live"))
		case 1:
			w.apply(eventstest.APIKeyRevoked(projectA, fmt.Sprintf("key_race_%d", i)))
		default:
			continue
		}
		state[i]++
		f.waitPos(t, w.seq)
		check(step)
	}
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
