package main

// The crash tests run the real sharesd binary as a child process against an
// embedded NATS server and a real redis-server, break something while
// events flow (SIGKILL, a NATS restart, Redis restarted empty or paused, a
// duplicate after JetStream's window, SIGTERM), and check that the final
// read model equals the reference model of the stream exactly.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
)

const faultBase = "https://www.craftkit.dev" // the default SHARE_BASE_URL

// TestFault builds sharesd once and runs each fault as a subtest on its
// own servers.
func TestFault(t *testing.T) {
	bin := faultBuild(t)
	for _, tt := range []struct {
		name string
		long bool
		test func(*testing.T, string)
	}{
		{"sigkill", true, testFaultSIGKILL},
		{"nats-restart", true, testFaultNATSRestart},
		{"redis-restart-empty", true, testFaultRedisRestart},
		{"redis-paused", true, testFaultRedisPause},
		{"duplicate-after-window", false, testFaultDuplicateAfterWindow},
		{"sigterm", true, testFaultSIGTERM},
		{"sigterm-redis-paused", true, testFaultSIGTERMRedisPaused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.long {
				faultLong(t)
			}
			t.Parallel()
			tt.test(t, bin)
		})
	}
}

// faultLong skips a test of many seconds under -short (make test-short);
// make test and CI run it.
func faultLong(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("takes many seconds; run without -short")
	}
}

// faultBuild builds the sharesd binary (without -race, so the child is
// fast) into a directory that lives as long as the test.
func faultBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sharesd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// testFaultSIGKILL publishes 100,000 events while killing the projector
// process with SIGKILL at random moments, at least 20 times.
func testFaultSIGKILL(t *testing.T, bin string) {
	const seed = 1
	rng := rand.New(rand.NewPCG(seed, 0xdead))
	f := newFaultEnv(t, bin)
	w := newFaultWork(seed, 2, 250, 3, 100_000)
	f.publishSetup(t, w)

	child := f.startProjector(t)
	start := time.Now()
	pub := f.publishInBackground(t, w.msgs)
	kills, busy := 0, 0
	for kills < 20 || !pub.done() {
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond) // the random moment of the kill, not synchronisation
		head, pos := f.head(t), f.activePos(t)
		child.kill(t)
		kills++
		if head > pos {
			busy++
		}
		// The dead process's lease would keep its successor waiting for up
		// to the lease TTL (5s); a supervisor restarting a crashed
		// projector waits that out. The last restart does wait it out.
		if kills < 20 || !pub.done() {
			f.dropLease(t)
		}
		child = f.startProjector(t)
	}
	pub.wait(t)
	t.Logf("%d SIGKILLs in %v, %d of them with events not yet saved as applied", kills, time.Since(start).Round(time.Millisecond), busy)
	f.waitCaughtUp(t, child, 90*time.Second)
	f.checkExact(t, w)
}

// testFaultNATSRestart restarts the NATS server on its store directory while
// the projector (a child process) projects and the test publishes.
func testFaultNATSRestart(t *testing.T, bin string) {
	f := newFaultEnv(t, bin)
	w := newFaultWork(2, 2, 50, 3, 20_000)
	f.publishSetup(t, w)
	child := f.startProjector(t)
	pub := f.publishInBackground(t, w.msgs)
	polltest.WaitFor(t, 30*time.Second, func() error {
		if n := pub.sent.Load(); n < int64(len(w.msgs)/2) {
			return fmt.Errorf("%d of %d published", n, len(w.msgs))
		}
		if pos := f.activePos(t); pos == 0 {
			return errors.New("the projector has saved no position yet")
		}
		return nil
	})
	f.ns = natstest.RestartServer(t, f.ns)
	pub.wait(t)
	f.waitCaughtUp(t, child, 60*time.Second)
	// The projector may have caught up before its client reconnected (the
	// publisher can be done first): the log line follows the reconnection.
	polltest.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(child.out.String(), "nats reconnected") {
			return fmt.Errorf("the projector's log does not mention reconnecting to NATS:\n%s", child.out.Tail(20))
		}
		return nil
	})
	f.checkExact(t, w)
}

// testFaultRedisRestart restarts Redis empty while events flow: the
// projector must notice and rebuild by itself, and meanwhile an API process
// answers 503 or the right data, never 401 or 404 for a known render and
// key, and never fewer shares or lower counts than it answered before.
func testFaultRedisRestart(t *testing.T, bin string) {
	f := newFaultEnv(t, bin)
	w := newFaultWork(3, 2, 40, 3, 30_000)
	f.publishSetup(t, w)
	child := f.startProjector(t)
	f.waitCaughtUp(t, child, 30*time.Second)
	apiChild := f.startAPI(t)
	readers := startFaultReaders(t, apiChild.waitAddr(t), w, w.renders[:10], 3)

	pub := f.publishInBackground(t, w.msgs)
	polltest.WaitFor(t, 30*time.Second, func() error {
		if n := pub.sent.Load(); n < int64(len(w.msgs)/3) {
			return fmt.Errorf("%d of %d published", n, len(w.msgs))
		}
		return nil
	})
	before := readers.count()
	f.redis.Restart(t)
	pub.wait(t)
	f.waitCaughtUp(t, child, 60*time.Second)
	polltest.WaitFor(t, 10*time.Second, func() error { // the API has seen the rebuilt model
		if n := readers.count(); n < before+100 {
			return fmt.Errorf("%d reads since the restart, want 100", n-before)
		}
		return nil
	})
	readers.stop(t)
	if !strings.Contains(child.out.String(), "READ MODEL VANISHED") && !strings.Contains(child.out.String(), "no active generation") {
		t.Errorf("the projector did not log that it rebuilds the vanished read model:\n%s", child.out.Tail(30))
	}
	if n := readers.statuses[http.StatusServiceUnavailable]; n == 0 {
		t.Logf("no read hit the rebuild window (statuses %v)", readers.statuses)
	}
	f.checkExact(t, w)
	f.checkOnlyActiveGeneration(t)
}

// testFaultRedisPause stops Redis (SIGSTOP) for 3 seconds while events
// arrive: the API answers 503 within about a second each time, and once
// Redis continues the projector resumes with nothing skipped.
func testFaultRedisPause(t *testing.T, bin string) {
	f := newFaultEnv(t, bin)
	w := newFaultWork(4, 2, 40, 3, 20_000)
	f.publishSetup(t, w)
	child := f.startProjector(t)
	f.waitCaughtUp(t, child, 30*time.Second)
	apiChild := f.startAPI(t)
	addr := apiChild.waitAddr(t)
	if got := faultGet(addr, w.renders[0], w.keyOf(w.renders[0])).status; got != http.StatusOK {
		t.Fatalf("before the pause: status %d, want 200", got)
	}

	pub := f.publishInBackground(t, w.msgs)
	f.redis.Pause(t)
	paused := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			f.redis.Resume(t)
		}
	}()
	n := 0
	for time.Since(paused) < 3*time.Second {
		r := w.renders[n%len(w.renders)]
		start := time.Now()
		got := faultGet(addr, r, w.keyOf(r))
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("request %d during the pause took %v, want < 1.5s", n, d)
		}
		// A body kept in memory may be served until the API gives up its
		// silent subscription (about a second): nothing can change in a
		// paused Redis, so it is current. After that, only 503s.
		switch known := start.Sub(paused) > pauseKnown; {
		case got.status == http.StatusServiceUnavailable && got.retryAfter != "":
		case got.status == http.StatusOK && !known:
		default:
			t.Errorf("request %d, %v into the pause: status %d (Retry-After %q), want 503 with Retry-After (or 200 from memory within %v)",
				n, start.Sub(paused).Round(time.Millisecond), got.status, got.retryAfter, pauseKnown)
		}
		n++
	}
	f.redis.Resume(t)
	resumed = true
	t.Logf("%d requests answered during the 3s pause", n)
	pub.wait(t)
	f.waitCaughtUp(t, child, 60*time.Second)
	f.checkExact(t, w)
}

// pauseKnown is how long after Redis stops answering the API has given up
// its subscription to the announcements for sure (readmodel's followSilence,
// 800 ms, plus a ping interval and slack) and no longer answers from memory.
const pauseKnown = 1200 * time.Millisecond

// testFaultDuplicateAfterWindow republishes an event after JetStream's
// duplicate window has passed, with its own and with a new Nats-Msg-Id:
// the stream stores it again each time, and it still counts once.
func testFaultDuplicateAfterWindow(t *testing.T, bin string) {
	f := newFaultEnv(t, bin)
	ctx := context.Background()
	s, err := f.js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = 200 * time.Millisecond
	if _, err := f.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("shrink the duplicate window: %v", err)
	}
	w := newFaultWork(5, 1, 1, 1, 0)
	f.publishSetup(t, w)
	child := f.startServe(t)
	addr := child.waitAddr(t)

	render, share := w.renders[0], w.shares[w.renders[0]][0]
	view := w.view(render, share, "view-once")
	first := f.publishOne(t, view, "view-once")
	published := time.Now()
	polltest.WaitFor(t, 5*time.Second, func() error {
		if d := time.Since(published); d < 400*time.Millisecond {
			return fmt.Errorf("only %v since the first copy, want twice the 200ms window", d)
		}
		return nil
	})
	again := f.publishOne(t, view, "view-once")         // same Nats-Msg-Id, window over
	retried := f.publishOne(t, view, "view-once-retry") // a new Nats-Msg-Id
	if again <= first || retried <= again {
		t.Fatalf("copies stored at %d, %d, %d: want three sequences (JetStream's window is over)", first, again, retried)
	}
	f.waitCaughtUp(t, child, 20*time.Second)
	got := faultGet(addr, render, w.keyOf(render))
	if got.status != http.StatusOK || len(got.shares) != 1 || got.shares[0].ClickCount != 1 {
		t.Fatalf("after three copies of one view: status %d, shares %+v, want one share with clickCount 1", got.status, got.shares)
	}
	f.checkExact(t, &faultWork{projects: w.projects, renders: w.renders, views: 1, keys: w.keys, renderProject: w.renderProject})
}

// testFaultSIGTERM stops `sharesd serve` with SIGTERM while events flow: it
// exits within 10s with status 0 and has saved the position of the last
// event it applied; a new process applies the rest exactly.
func testFaultSIGTERM(t *testing.T, bin string) {
	f := newFaultEnv(t, bin)
	w := newFaultWork(6, 1, 40, 3, 40_000)
	f.publishSetup(t, w)
	child := f.startServe(t)
	f.waitCaughtUp(t, child, 30*time.Second)
	pub := f.publishInBackground(t, w.msgs)
	polltest.WaitFor(t, 30*time.Second, func() error {
		if pos := f.activePos(t); pos < f.setupSeq+uint64(len(w.msgs)/4) {
			return fmt.Errorf("the projector saved %d, want a quarter of the events applied", pos)
		}
		return nil
	})
	took, err := child.term(t)
	if err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0\n%s", err, child.out.Tail(20))
	}
	if took > 10*time.Second {
		t.Errorf("exited %v after SIGTERM, want within 10s", took)
	}
	pos, applied := f.activePos(t), f.maxRenderSeq(t, w)
	if pos != applied {
		t.Errorf("saved position %d, but the last event applied is at seq %d", pos, applied)
	}
	head := f.head(t)
	t.Logf("SIGTERM after %d events: exited in %v at position %d, stream head %d", pos, took.Round(time.Millisecond), pos, head)
	pub.wait(t)
	child = f.startServe(t)
	f.waitCaughtUp(t, child, 60*time.Second)
	f.checkExact(t, w)
}

// testFaultSIGTERMRedisPaused stops `sharesd serve` with SIGTERM while
// Redis does not answer: it cannot save anything, but it still exits within
// 10s with status 0, and a new process applies everything exactly once
// Redis is back.
func testFaultSIGTERMRedisPaused(t *testing.T, bin string) {
	f := newFaultEnv(t, bin)
	w := newFaultWork(7, 1, 20, 3, 10_000)
	f.publishSetup(t, w)
	child := f.startServe(t)
	f.waitCaughtUp(t, child, 30*time.Second)
	pub := f.publishInBackground(t, w.msgs)
	polltest.WaitFor(t, 30*time.Second, func() error {
		if pos := f.activePos(t); pos < f.setupSeq+uint64(len(w.msgs)/10) {
			return fmt.Errorf("the projector saved %d, want a tenth of the events applied", pos)
		}
		return nil
	})
	f.redis.Pause(t)
	resumed := false
	defer func() {
		if !resumed {
			f.redis.Resume(t)
		}
	}()
	// Give the projector's next write the time to reach the paused Redis:
	// the moment of the fault, not synchronisation (the checks below hold
	// whether or not a write is waiting).
	time.Sleep(200 * time.Millisecond)
	took, err := child.term(t)
	f.redis.Resume(t)
	resumed = true
	if err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0\n%s", err, child.out.Tail(20))
	}
	if took > 10*time.Second {
		t.Errorf("exited %v after SIGTERM with Redis paused, want within 10s", took.Round(time.Millisecond))
	}
	t.Logf("exited %v after SIGTERM with Redis paused", took.Round(time.Millisecond))
	pub.wait(t)
	child = f.startServe(t)
	f.waitCaughtUp(t, child, 60*time.Second)
	f.checkExact(t, w)
}

// faultMsg is one message to publish.
type faultMsg struct {
	subject, msgID string
	data           []byte
}

// faultWork is a workload: set-up events (keys, renders), then mostly views
// across many shares, with creations, revocations, duplicates and a few bad
// events mixed in, and what the read model must add up to.
type faultWork struct {
	projects      []string
	renders       []string
	renderProject map[string]string
	shares        map[string][]string // by render
	keys          map[string]string   // project -> plaintext key
	setup, msgs   []faultMsg
	views         int // distinct view events that count (each share is created)
}

// keyOf is the key of render's project.
func (w *faultWork) keyOf(render string) string { return w.keys[w.renderProject[render]] }

func newFaultWork(seed uint64, projects, renders, sharesPer, n int) *faultWork {
	rng := rand.New(rand.NewPCG(seed, 0xfa017))
	w := &faultWork{renderProject: map[string]string{}, shares: map[string][]string{}, keys: map[string]string{}}
	for i := range projects {
		p := eventstest.SeededUUID(rng)
		w.projects = append(w.projects, p)
		w.keys[p] = fmt.Sprintf("ck_live_fault_%d_%d", seed, i)
		keyID := fmt.Sprintf("key_%d_%d", seed, i)
		w.setup = append(w.setup, faultMsgOf(eventstest.APIKeyCreated(p, keyID, w.keys[p], "live").WithID("setup-"+keyID)))
	}
	var all [][2]string // (render, share)
	for i := range renders {
		r := eventstest.SeededUUID(rng)
		w.renders = append(w.renders, r)
		w.renderProject[r] = w.projects[i%projects]
		w.setup = append(w.setup, faultMsgOf(eventstest.RenderCreated(w.renderProject[r], r).WithID("setup-render-"+r)))
		for j := range sharesPer {
			s := fmt.Sprintf("share-%d-%d", i, j)
			w.shares[r] = append(w.shares[r], s)
			all = append(all, [2]string{r, s})
		}
	}
	if n == 0 {
		for _, rs := range all { // create every share in the set-up
			w.setup = append(w.setup, w.created(rs[0], rs[1], rng))
		}
		return w
	}
	// Creations land in the first 60% of the stream, so many shares see
	// views before they exist; revocations anywhere.
	slots := make([]*faultMsg, n)
	place := func(m faultMsg, limit int) {
		for {
			if i := rng.IntN(limit); slots[i] == nil {
				slots[i] = &m
				return
			}
		}
	}
	for _, rs := range all {
		place(w.created(rs[0], rs[1], rng), n*6/10)
		if rng.IntN(6) == 0 {
			place(faultMsgOf(eventstest.ShareRevoked(w.renderProject[rs[0]], rs[0], rs[1], "2026-06-05T13:00:00.123456Z", "revoked_by_partner").
				WithID(fmt.Sprintf("revoke-%s-%s", rs[0], rs[1]))), n)
		}
	}
	for i := 0; i < 12; i++ {
		rs := all[rng.IntN(len(all))]
		place(w.bad(rs[0], rs[1], i), n)
	}
	for i := range slots {
		if slots[i] != nil {
			w.msgs = append(w.msgs, *slots[i])
			continue
		}
		switch x := rng.IntN(1000); {
		case x < 10 && len(w.msgs) > 0: // republished with a new Nats-Msg-Id: stored twice, counts once
			m := w.msgs[rng.IntN(len(w.msgs))]
			m.msgID = fmt.Sprintf("retry-%d-%s", i, m.msgID)
			w.msgs = append(w.msgs, m)
		case x < 15 && len(w.msgs) > 0: // republished with its own Nats-Msg-Id: JetStream drops it
			w.msgs = append(w.msgs, w.msgs[len(w.msgs)-1-rng.IntN(min(len(w.msgs), 100))])
		default:
			rs := all[rng.IntN(len(all))]
			w.msgs = append(w.msgs, w.view(rs[0], rs[1], fmt.Sprintf("view-%d-%d", seed, i)))
			w.views++
		}
	}
	return w
}

// faultMsgOf is e ready to publish, with its id as Nats-Msg-Id.
func faultMsgOf(e eventstest.Event) faultMsg {
	return faultMsg{subject: e.Subject(), msgID: e.ID, data: e.Body()}
}

func (w *faultWork) view(render, share, id string) faultMsg {
	return faultMsgOf(eventstest.ShareViewed(w.renderProject[render], render, share).WithID(id))
}

func (w *faultWork) created(render, share string, rng *rand.Rand) faultMsg {
	at := fmt.Sprintf("2026-06-05T10:%02d:%02d.%06dZ", rng.IntN(60), rng.IntN(60), rng.IntN(1e6))
	return faultMsgOf(eventstest.ShareCreated(w.renderProject[render], render, share, at).
		With("message", "for "+share).WithID("create-" + render + "-" + share))
}

// bad is a malformed event of kind i%6: each is dead-lettered, never applied.
func (w *faultWork) bad(render, share string, i int) faultMsg {
	m := w.view(render, share, fmt.Sprintf("bad-%d", i))
	switch i % 6 {
	case 0:
		m.data = []byte(`{"id": "bad-0", not json`)
	case 1:
		m.data = bytes.Replace(m.data, []byte(`"share.viewed"`), []byte(`"share.exploded"`), 1)
	case 2:
		m.data = bytes.Replace(m.data, []byte(`"viewedAt"`), []byte(`"seenAt"`), 1)
	case 3:
		m.data = bytes.Replace(m.data, []byte(w.renderProject[render]), []byte("not-a-uuid"), 1)
	case 4:
		m.data = bytes.Replace(m.data, []byte(`"`+eventstest.ViewedAt+`"}`), []byte(`"yesterday"}`), 1)
	case 5:
		m.data = append(bytes.TrimSuffix(m.data, []byte("}")), fmt.Sprintf(`,"pad":"%s"}`, strings.Repeat("x", events.MaxSize))...)
	}
	return m
}
