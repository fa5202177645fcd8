package api_test

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/model"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// modelWorld is a world whose events are also folded into the reference
// model, the expected answer of every read.
type modelWorld struct {
	*world
	m *model.Model
}

func newModelWorld(t testing.TB) *modelWorld {
	return &modelWorld{world: newWorld(t), m: model.New(24 * time.Hour)}
}

// apply applies evs in one batch, announced, and folds them into the model.
func (w *modelWorld) apply(evs ...eventstest.Event) {
	w.t.Helper()
	ops := w.ops(evs...)
	w.applyOps(ops)
	w.fold(ops, evs)
}

func (w *modelWorld) fold(ops []readmodel.Op, evs []eventstest.Event) {
	for i, e := range evs {
		w.m.Apply(model.Msg{Seq: ops[i].Seq, Time: ops[i].Time, Subject: e.Subject(), Data: e.Body()})
	}
}

// want is what the model says a list of render answers: its shares, or
// nil for a 404.
func (w *modelWorld) want(render string) []share {
	list, ok := w.m.List(projectA, render, defaultBase)
	if !ok {
		return nil
	}
	return list
}

// check fails unless r is what the model answers for render.
func (w *modelWorld) check(t testing.TB, what string, r reply, render string) {
	t.Helper()
	want := w.want(render)
	if want == nil {
		if r.status != http.StatusNotFound {
			t.Fatalf("%s: status %d, want 404 (the model has no such render); body %s", what, r.status, r.body)
		}
		return
	}
	if got := r.shares(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %+v,\nwant %+v", what, got, want)
	}
}

// warm reads render until its body is kept, and checks that the next reads
// are answered from memory, without a list read in Redis.
// warmWorld is a world holding a live key and renderA with share s1, and
// an API following it whose body of renderA is kept.
func warmWorld(t *testing.T) (*modelWorld, *follower) {
	t.Helper()
	w := newModelWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	f := w.follow(api.Config{})
	warm(t, f, renderA, liveKey)
	return w, f
}

func warm(t testing.TB, f *follower, render, key string) {
	t.Helper()
	get(t, f.srv, render, key)
	before := f.store.lists.Load()
	for range 3 {
		if r := get(t, f.srv, render, key); r.status != http.StatusOK {
			t.Fatalf("warm: status %d, want 200", r.status)
		}
	}
	if n := f.store.lists.Load() - before; n != 0 {
		t.Fatalf("warm: %d list reads in Redis for 3 requests, want 0 (answered from memory)", n)
	}
}

// TestMemoryReadInvalidation checks each kind of change through a warm
// cache: once the change is announced, the first request answers what the
// reference model says, read from Redis; a change of another render leaves
// the kept body served from memory. Without the announcement's names, or
// with a time-to-live, the first request after a change answers the old
// body.
func TestMemoryReadInvalidation(t *testing.T) {
	t.Parallel()
	const newKey = "ck_live_memory_read_new_key"
	w := newModelWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareCreated(projectA, renderB, "b1", "2026-06-05T10:00:00Z"))
	f := w.follow(api.Config{})
	steps := []struct {
		name   string
		change eventstest.Event
		key    string // the key to read with after the change
		status int
		redis  bool // the first read after the change reads the list in Redis
	}{
		{"a view", eventstest.ShareViewed(projectA, renderA, "s1"), liveKey, 200, true},
		{"a new share", eventstest.ShareCreated(projectA, renderA, "s2", "2026-06-05T11:00:00Z"), liveKey, 200, true},
		{"a share revoked", eventstest.ShareRevoked(projectA, renderA, "s1", "2026-06-05T12:00:00Z", "spam"), liveKey, 200, true},
		{"the project's share base", eventstest.ProjectUpdated(projectA, "https://share.example"), liveKey, 200, true},
		{"another render's view", eventstest.ShareViewed(projectA, renderB, "b1"), liveKey, 200, false},
		{"a key created", eventstest.APIKeyCreated(projectA, "key_new", newKey, "live"), newKey, 200, false},
		{"a key revoked", eventstest.APIKeyRevoked(projectA, "key_new"), newKey, 401, false},
		{"the render deleted", eventstest.RenderDeleted(projectA, renderA), liveKey, 404, true},
	}
	for _, s := range steps {
		warm(t, f, renderA, liveKey)
		w.apply(s.change)
		f.waitPos(t, w.seq)
		before := f.store.lists.Load()
		r := get(t, f.srv, renderA, s.key)
		if s.status == http.StatusUnauthorized {
			if r.status != s.status {
				t.Fatalf("%s: status %d, want 401", s.name, r.status)
			}
			continue
		}
		w.check(t, s.name, r, renderA)
		if got := f.store.lists.Load()-before == 1; got != s.redis {
			t.Errorf("%s: read the list in Redis: %v, want %v", s.name, got, s.redis)
		}
	}
}

// TestMemoryReadMetrics checks that list answers are counted by source:
// from memory, or after a Redis round trip.
func TestMemoryReadMetrics(t *testing.T) {
	t.Parallel()
	w := authWorld(t)
	m := api.NewMetrics(prometheus.NewRegistry())
	f := w.followWith(api.Config{}, nil, m)
	warm(t, f, renderA, liveKey) // 1 from Redis, 3 from memory
	if r := get(t, f.srv, renderA, liveKey, "If-None-Match: *"); r.status != http.StatusNotModified {
		t.Fatalf("If-None-Match: *: status %d, want 304", r.status)
	}
	for source, want := range map[string]float64{"memory": 4, "redis": 1} {
		if got := metricValue(t, m.Lists.WithLabelValues(source)); got != want {
			t.Errorf("sharesd_api_list_answers_total{source=%q} = %v, want %v", source, got, want)
		}
	}
}

// switchTo writes ops into a new generation without announcing them, as a
// rebuild does, activates it in place of w's and waits until f has heard
// of the switch.
func switchTo(t *testing.T, w *world, f *follower, ops []readmodel.Op) {
	t.Helper()
	gen := readmodel.NewGen(time.Now().Add(time.Second))
	ctx := context.Background()
	if _, _, err := w.store.Apply(ctx, gen, ops, ops[len(ops)-1].Seq, false); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.store.Activate(ctx, gen, w.gen); err != nil || !ok {
		t.Fatalf("activate: ok=%v err=%v", ok, err)
	}
	f.wait(t, "the switch", func(a readmodel.AppliedPos) bool { return a.Switched })
}

// TestMemoryReadSwitch checks that a generation switch (a rebuild
// activated with Store.Activate) is visible on the first request after it
// is announced, though the render's versions in the new generation are
// those of the old one.
func TestMemoryReadSwitch(t *testing.T) {
	t.Parallel()
	w := authWorld(t)
	f := w.follow(api.Config{})
	warm(t, f, renderA, liveKey)
	oldTag := get(t, f.srv, renderA, liveKey).header.Get("ETag")
	// The new generation holds one more view than the old, applied
	// without an announcement, as a rebuild writes.
	switchTo(t, w, f, w.ops(eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"), eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"), eventstest.ShareViewed(projectA, renderA, "s1")))
	shares := get(t, f.srv, renderA, liveKey, "If-None-Match: "+oldTag).shares(t) // a 304 has no shares
	if len(shares) != 1 || shares[0].ClickCount != 1 {
		t.Fatalf("after the switch, with the ETag from before: %+v, want s1 with 1 view (the new generation)", shares)
	}
}

// TestMemoryReadSelfHeal checks a warm cache through FLUSHALL and the
// projector's heal (a new generation built from the stream and activated):
// meanwhile a read answers the old list or 503, and once the switch is
// announced the first read answers the healed generation.
func TestMemoryReadSelfHeal(t *testing.T) {
	t.Parallel()
	w := newModelWorld(t)
	history := []eventstest.Event{eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z")}
	w.apply(history...)
	f := w.follow(api.Config{})
	warm(t, f, renderA, liveKey)
	old := get(t, f.srv, renderA, liveKey)
	ctx := context.Background()
	if err := w.redis.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if r := get(t, f.srv, renderA, liveKey); r.status != http.StatusServiceUnavailable && string(r.body) != string(old.body) {
		t.Fatalf("between FLUSHALL and the heal: status %d, body %s; want 503 or the list before", r.status, r.body)
	}
	// The heal: the stream replayed into a new generation, one more view
	// arrived meanwhile, and the generation is activated.
	w.gen, w.seq = readmodel.NewGen(time.Now().Add(time.Second)), 0
	w.m = model.New(24 * time.Hour)
	ops := w.ops(append(history, eventstest.ShareViewed(projectA, renderA, "s1"))...)
	if _, _, err := w.store.Apply(ctx, w.gen, ops, ops[len(ops)-1].Seq, false); err != nil {
		t.Fatal(err)
	}
	w.fold(ops, append(history, eventstest.ShareViewed(projectA, renderA, "s1")))
	if ok, err := w.store.Activate(ctx, w.gen, ""); err != nil || !ok {
		t.Fatalf("activate: ok=%v err=%v", ok, err)
	}
	f.wait(t, "the switch", func(a readmodel.AppliedPos) bool { return a.Switched })
	w.check(t, "after the heal", get(t, f.srv, renderA, liveKey), renderA)
}

// TestMemoryReadSubscriptionKilled checks that once the API knows its
// subscription is gone (CLIENT KILL), a change applied before it
// subscribes again is never hidden by a kept body: every read goes to
// Redis until the subscription is live, then bodies are kept again.
func TestMemoryReadSubscriptionKilled(t *testing.T) {
	t.Parallel()
	w, f := warmWorld(t)
	if err := w.redis.Client(t).ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "the subscription lost", func(a readmodel.AppliedPos) bool { return a.Lost })
	w.apply(eventstest.ShareViewed(projectA, renderA, "s1")) // announced to no one
	before := f.store.lists.Load()
	for range 3 {
		w.check(t, "subscription down", get(t, f.srv, renderA, liveKey), renderA)
	}
	if got := f.store.lists.Load() - before; got != 3 {
		t.Errorf("subscription down: %d list reads in Redis for 3 requests, want 3 (none from memory)", got)
	}
	f.wait(t, "the subscription live again", live)
	w.check(t, "subscription live again", get(t, f.srv, renderA, liveKey), renderA)
	warm(t, f, renderA, liveKey)
}

// TestMemoryReadRedisPaused checks that when Redis is paused (SIGSTOP) the
// API stops answering from memory as soon as it notices (about a second)
// and answers 503 fast, never a 200 it cannot confirm; after the resume it
// answers changes and keeps bodies again.
func TestMemoryReadRedisPaused(t *testing.T) {
	t.Parallel()
	w, f := warmWorld(t)
	w.redis.Pause(t)
	paused := time.Now()
	f.wait(t, "the subscription lost", func(a readmodel.AppliedPos) bool { return a.Lost })
	if d := time.Since(paused); d > 2*time.Second {
		t.Errorf("the silent subscription was noticed %v after the pause, want within about a second", d)
	}
	start := time.Now()
	wantUnavailable(t, get(t, f.srv, renderA, liveKey))
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("answered after %v, want within 1.5s", d)
	}
	w.redis.Resume(t)
	f.wait(t, "the subscription live again", live)
	w.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
	f.waitPos(t, w.seq)
	w.check(t, "after the resume", get(t, f.srv, renderA, liveKey), renderA)
	warm(t, f, renderA, liveKey)
	w.check(t, "after the resume, from memory", get(t, f.srv, renderA, liveKey), renderA)
}

// gatedStore holds list reads, once gated, between Redis's answer and the
// handler: read is sent when one has its answer, and it returns it when
// released.
type gatedStore struct {
	api.Store
	gated   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

func (s *gatedStore) List(ctx context.Context, projectID, renderID string, have *readmodel.Versions) (*readmodel.List, error) {
	l, err := s.Store.List(ctx, projectID, renderID, have)
	if s.gated.Load() {
		s.read <- struct{}{}
		<-s.release
	}
	return l, err
}

// TestMemoryReadRaceGuard checks that a list read from Redis before a
// change and returned after the change was announced is answered (it was
// current when read) but not kept as current: the next request answers the
// change. A guard that stamps the body when the read returns serves the
// old body from memory.
func TestMemoryReadRaceGuard(t *testing.T) {
	t.Parallel()
	w := newModelWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	gate := &gatedStore{read: make(chan struct{}), release: make(chan struct{})}
	f := w.followWith(api.Config{}, func(s api.Store) api.Store { gate.Store = s; return gate }, nil)
	warm(t, f, renderA, liveKey)
	w.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
	f.waitPos(t, w.seq)
	gate.gated.Store(true)
	done := make(chan reply, 1)
	go func() {
		r, err := fetch(f.srv, http.MethodGet, sharesPath(renderA), nil, "Authorization: Bearer "+liveKey)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	<-gate.read // read with one view
	gate.gated.Store(false)
	before := w.want(renderA)
	w.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
	f.waitPos(t, w.seq)
	close(gate.release)
	if got := (<-done).shares(t); !reflect.DeepEqual(got, before) {
		t.Fatalf("the held read: %+v, want %+v", got, before)
	}
	w.check(t, "the first read after the held one", get(t, f.srv, renderA, liveKey), renderA)
}

// TestMemoryReadAnnounceChanged checks that a render changed without a
// batch's announcement (as rebuild -render swaps a render in) is seen on
// the first request after Store.AnnounceChanged names it.
func TestMemoryReadAnnounceChanged(t *testing.T) {
	t.Parallel()
	w, f := warmWorld(t)
	evs := []eventstest.Event{eventstest.ShareViewed(projectA, renderA, "s1")}
	ops := w.ops(evs...)
	if _, _, err := w.store.Apply(context.Background(), w.gen, ops, 0, false); err != nil { // not announced
		t.Fatal(err)
	}
	w.fold(ops, evs)
	if err := w.store.AnnounceChanged(context.Background(), renderA); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "the change announced", func(a readmodel.AppliedPos) bool { return len(a.Changed) == 1 })
	w.check(t, "after AnnounceChanged", get(t, f.srv, renderA, liveKey), renderA)
}

// TestMemoryReadCluster checks memory reads on a Redis Cluster, where
// announcements go over sharded pub/sub once the batch is replicated: a
// warm body is answered from memory, and a change is seen on the first
// request after its announcement.
func TestMemoryReadCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	store := readmodel.New(c.Client(t), 24*time.Hour)
	ctx := context.Background()
	if err := store.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	w := &modelWorld{world: &world{t: t, cluster: c, store: store, gen: readmodel.NewGen(time.Now())}, m: model.New(24 * time.Hour)}
	if ok, err := store.Activate(ctx, w.gen, ""); err != nil || !ok {
		t.Fatalf("activate: ok=%v err=%v", ok, err)
	}
	w.apply(eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	f := w.follow(api.Config{})
	for _, change := range []eventstest.Event{eventstest.ShareViewed(projectA, renderA, "s1"),
		eventstest.ProjectUpdated(projectA, "https://share.example"), eventstest.RenderDeleted(projectA, renderA)} {
		warm(t, f, renderA, liveKey)
		w.apply(change)
		f.waitPos(t, w.seq)
		w.check(t, string(change.Type), get(t, f.srv, renderA, liveKey), renderA)
	}
}

// TestMemoryRead304Rearms checks that a kept body whose stamp went old (here
// by a resubscription) is trusted again after a revalidation that Redis
// answers 304: clients that only revalidate are then answered from memory
// too, not from Redis forever.
func TestMemoryRead304Rearms(t *testing.T) {
	t.Parallel()
	w := authWorld(t)
	f := w.follow(api.Config{})
	warm(t, f, renderA, liveKey)
	tag := get(t, f.srv, renderA, liveKey).header.Get("ETag")
	if err := w.redis.Client(t).ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "the subscription lost", func(a readmodel.AppliedPos) bool { return a.Lost })
	f.wait(t, "the subscription live again", live)
	before := f.store.lists.Load()
	for range 3 {
		if r := get(t, f.srv, renderA, liveKey, "If-None-Match: "+tag); r.status != http.StatusNotModified {
			t.Fatalf("revalidation: status %d, want 304", r.status)
		}
	}
	if got := f.store.lists.Load() - before; got != 1 {
		t.Errorf("3 revalidations after the resubscription: %d list reads in Redis, want 1 (then from memory)", got)
	}
	if r := get(t, f.srv, renderA, liveKey); string(r.body) == "" || r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Errorf("the body after: Content-Length %s for %d bytes", r.header.Get("Content-Length"), len(r.body))
	}
}

// TestETagAfterRebuild: a rebuilt generation can hold another list at the
// same versions (it repairs drift: here the old generation holds a view
// the new one does not), so a client's ETag from before the switch must
// not answer 304 after it.
func TestETagAfterRebuild(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ops := w.ops(eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"), eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareViewed(projectA, renderA, "s1"), eventstest.ShareViewed(projectA, renderA, "s1"))
	w.applyOps(ops)
	f := w.follow(api.Config{})
	before := get(t, f.srv, renderA, liveKey)
	if s := before.shares(t); s[0].ClickCount != 2 {
		t.Fatalf("before: %+v, want 2 views", s)
	}
	switchTo(t, w, f, slices.Delete(slices.Clone(ops), 3, 4)) // the same list version: the last view is there
	after := get(t, f.srv, renderA, liveKey, "If-None-Match: "+before.header.Get("ETag"))
	if s := after.shares(t); s[0].ClickCount != 1 { // a 304 fails here: it has no shares
		t.Fatalf("after: %+v, want 1 view (the rebuilt generation)", s)
	}
	if after.header.Get("X-Projection-Seq") != before.header.Get("X-Projection-Seq") {
		t.Fatalf("X-Projection-Seq %s, then %s: the test wants the same versions in both generations",
			before.header.Get("X-Projection-Seq"), after.header.Get("X-Projection-Seq"))
	}
}
