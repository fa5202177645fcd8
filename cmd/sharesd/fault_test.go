package main

// The crash tests run the real sharesd binary as a child process against an
// embedded NATS server and a real redis-server, break something while
// events flow (SIGKILL, a NATS restart, Redis restarted empty or paused, a
// duplicate after JetStream's window, SIGTERM), and check that the final
// read model equals the reference model of the stream exactly.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
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
		faultPause(t, time.Duration(100+rng.IntN(500))*time.Millisecond)
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
	faultWaitFor(t, 30*time.Second, func() error {
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
	if !strings.Contains(child.out.String(), "nats reconnected") {
		t.Errorf("the projector's log does not mention reconnecting to NATS:\n%s", child.out.tail(20))
	}
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
	faultWaitFor(t, 30*time.Second, func() error {
		if n := pub.sent.Load(); n < int64(len(w.msgs)/3) {
			return fmt.Errorf("%d of %d published", n, len(w.msgs))
		}
		return nil
	})
	before := readers.count()
	f.redis.Restart(t)
	pub.wait(t)
	f.waitCaughtUp(t, child, 60*time.Second)
	faultWaitFor(t, 10*time.Second, func() error { // the API has seen the rebuilt model
		if n := readers.count(); n < before+100 {
			return fmt.Errorf("%d reads since the restart, want 100", n-before)
		}
		return nil
	})
	readers.stop(t)
	if !strings.Contains(child.out.String(), "READ MODEL VANISHED") && !strings.Contains(child.out.String(), "no active generation") {
		t.Errorf("the projector did not log that it rebuilds the vanished read model:\n%s", child.out.tail(30))
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
	if got := faultGet(t, addr, w.renders[0], w.keyOf(w.renders[0])).status; got != http.StatusOK {
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
		got := faultGet(t, addr, r, w.keyOf(r))
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("request %d during the pause took %v, want < 1.5s", n, d)
		}
		if got.status != http.StatusServiceUnavailable || got.retryAfter == "" {
			t.Errorf("request %d during the pause: status %d (Retry-After %q), want 503 with Retry-After", n, got.status, got.retryAfter)
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
	faultWaitFor(t, 5*time.Second, func() error {
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
	got := faultGet(t, addr, render, w.keyOf(render))
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
	faultWaitFor(t, 30*time.Second, func() error {
		if pos := f.activePos(t); pos < f.setupSeq+uint64(len(w.msgs)/4) {
			return fmt.Errorf("the projector saved %d, want a quarter of the events applied", pos)
		}
		return nil
	})
	took, err := child.term(t)
	if err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0\n%s", err, child.out.tail(20))
	}
	if took > 10*time.Second {
		t.Errorf("exited %v after SIGTERM, want within 10s", took)
	}
	pos, applied := f.activePos(t), f.maxRenderSeq(t)
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
	faultWaitFor(t, 30*time.Second, func() error {
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
	faultPause(t, 200*time.Millisecond) // a write is now waiting for Redis
	took, err := child.term(t)
	f.redis.Resume(t)
	resumed = true
	if err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0\n%s", err, child.out.tail(20))
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

// faultEnv is one test's servers: an embedded NATS with a store directory
// that survives restarts, a redis-server, and clients of both.
type faultEnv struct {
	bin      string
	ns       *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	redis    *redistest.Server
	store    *readmodel.Store
	setupSeq uint64 // last sequence of the setup events
}

func newFaultEnv(t *testing.T, bin string) *faultEnv {
	t.Helper()
	ns := natstest.StartServer(t, t.TempDir())
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second), jetstream.WithPublishAsyncMaxPending(2000))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := projector.EnsureStreams(ctx, js); err != nil {
		t.Fatalf("streams: %v", err)
	}
	rs := redistest.Start(t)
	return &faultEnv{bin: bin, ns: ns, nc: nc, js: js, redis: rs, store: readmodel.New(rs.Client(t), readmodel.DefaultHorizon)}
}

func (f *faultEnv) startProjector(t *testing.T) *faultChild {
	return f.start(t, "projector")
}

func (f *faultEnv) startServe(t *testing.T) *faultChild { return f.start(t, "serve") }

func (f *faultEnv) startAPI(t *testing.T) *faultChild { return f.start(t, "api") }

func (f *faultEnv) start(t *testing.T, sub string) *faultChild {
	t.Helper()
	return startFaultChild(t, f.bin, []string{"NATS_URL=" + f.ns.ClientURL(), "REDIS_URL=" + f.redis.URL, "LOG_FORMAT=json"},
		sub, "-http-addr", "127.0.0.1:0")
}

// head is the stream's last sequence.
func (f *faultEnv) head(t testing.TB) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := f.js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return s.CachedInfo().State.LastSeq
}

// activePos is the saved position of the active generation (0 if none).
func (f *faultEnv) activePos(t testing.TB) uint64 {
	t.Helper()
	ctl, err := f.store.ReadControl(context.Background())
	if err != nil {
		t.Fatalf("read control: %v", err)
	}
	return ctl.Pos[ctl.Active]
}

// dropLease deletes the projector lease of a process that was killed.
func (f *faultEnv) dropLease(t testing.TB) {
	t.Helper()
	if err := f.store.Client().Del(context.Background(), "sharesd:{meta}:lease").Err(); err != nil {
		t.Fatalf("drop lease: %v", err)
	}
}

// waitCaughtUp waits until the active generation's saved position has
// reached the stream's head (the projector saves it within a second of
// going idle), failing early if the projector's process is gone.
func (f *faultEnv) waitCaughtUp(t testing.TB, proc faultProc, timeout time.Duration) {
	t.Helper()
	faultWaitFor(t, timeout, func() error {
		if err := proc.alive(); err != nil {
			t.Fatal(err)
		}
		head := f.head(t)
		ctl, err := f.store.ReadControl(context.Background())
		if err != nil {
			return err
		}
		if ctl.Active == "" || ctl.Pos[ctl.Active] < head {
			return fmt.Errorf("active generation %q saved at %d, stream head %d", ctl.Active, ctl.Pos[ctl.Active], head)
		}
		return nil
	})
}

// maxRenderSeq is the highest stream sequence applied to any render of the
// active generation, read from the renders' own guards.
func (f *faultEnv) maxRenderSeq(t testing.TB) uint64 {
	t.Helper()
	ctx := context.Background()
	ctl, err := f.store.ReadControl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rdb := f.store.Client()
	var top uint64
	it := rdb.Scan(ctx, 0, "sharesd:"+ctl.Active+":{*}:render", 1000).Iterator()
	for it.Next(ctx) {
		seq, err := rdb.HGet(ctx, it.Val(), "seq").Uint64()
		if err != nil {
			t.Fatalf("seq of %s: %v", it.Val(), err)
		}
		top = max(top, seq)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return top
}

// checkExact checks the read model against the reference model of the
// whole stream (projector.Verify), and that the click counts add up to the
// number of distinct view events published.
func (f *faultEnv) checkExact(t *testing.T, w *faultWork) {
	t.Helper()
	ctx := context.Background()
	// The projector has caught up already: a difference is final, so
	// Verify need not wait for it to go away.
	rep, err := projector.Verify(ctx, f.js, f.store, projector.VerifyOptions{DefaultBase: faultBase, Wait: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for i, d := range rep.Diffs {
		if i == 5 {
			t.Errorf("… and %d more differences", len(rep.Diffs)-5)
			break
		}
		t.Errorf("verify: %s: %s\n  stream: %.600s\n  redis:  %.600s", d.RenderID, d.Reason, d.Want, d.Got)
	}
	if rep.Checked != len(w.renders) || rep.Moved != 0 || rep.Keys != len(w.keys) {
		t.Errorf("verify checked %d renders (%d moved on) and %d keys, want %d renders, none moved, %d keys",
			rep.Checked, rep.Moved, rep.Keys, len(w.renders), len(w.keys))
	}
	var total int64
	for _, r := range w.renders {
		l, err := f.store.List(ctx, w.renderProject[r], r, nil)
		if err != nil {
			t.Fatalf("list %s: %v", r, err)
		}
		b, err := l.AppendJSON(nil, faultBase)
		if err != nil {
			t.Fatal(err)
		}
		var shares []faultShare
		if err := json.Unmarshal(b, &shares); err != nil {
			t.Fatal(err)
		}
		for _, s := range shares {
			total += s.ClickCount
		}
	}
	if total != int64(w.views) {
		t.Errorf("clickCounts add up to %d, want %d distinct view events", total, w.views)
	}
}

// checkOnlyActiveGeneration checks, once the projector has had time to
// clean up, that Redis holds keys of the active generation only.
func (f *faultEnv) checkOnlyActiveGeneration(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	faultWaitFor(t, 15*time.Second, func() error {
		ctl, err := f.store.ReadControl(ctx)
		if err != nil {
			return err
		}
		gens, err := f.store.Generations(ctx)
		if err != nil {
			return err
		}
		for g, n := range gens {
			if g != ctl.Active {
				return fmt.Errorf("generation %s still has %d keys (active %s)", g, n, ctl.Active)
			}
		}
		return nil
	})
}

// publishSetup publishes w's keys and renders synchronously, before the
// workload.
func (f *faultEnv) publishSetup(t *testing.T, w *faultWork) {
	t.Helper()
	for _, m := range w.setup {
		f.setupSeq = natstest.Publish(t, f.js, m.subject, m.data, m.msgID)
	}
}

func (f *faultEnv) publishOne(t *testing.T, m faultMsg, msgID string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := f.js.Publish(ctx, m.subject, m.data, jetstream.WithMsgID(msgID))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Duplicate {
		t.Fatalf("publish %s: JetStream dropped it as a duplicate", msgID)
	}
	return ack.Sequence
}

// faultPublisher publishes in the background. Like a real publisher it
// retries what was not acknowledged, with the same Nats-Msg-Id.
type faultPublisher struct {
	sent     atomic.Int64
	finished chan struct{}
	err      error
}

func (f *faultEnv) publishInBackground(t *testing.T, msgs []faultMsg) *faultPublisher {
	t.Helper()
	p := &faultPublisher{finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		p.err = faultPublishAll(f.js, msgs, &p.sent)
	}()
	t.Cleanup(func() { <-p.finished })
	return p
}

func (p *faultPublisher) done() bool {
	select {
	case <-p.finished:
		return true
	default:
		return false
	}
}

func (p *faultPublisher) wait(t testing.TB) {
	t.Helper()
	select {
	case <-p.finished:
	case <-time.After(3 * time.Minute):
		t.Fatal("publishing did not finish within 3 minutes")
	}
	if p.err != nil {
		t.Fatalf("publish: %v", p.err)
	}
}

// faultPublishAll publishes msgs in chunks of async publishes, and
// publishes again each one whose ack failed, until every one is
// acknowledged or a minute passes without progress.
func faultPublishAll(js jetstream.JetStream, msgs []faultMsg, sent *atomic.Int64) error {
	const chunk = 1000
	for start := 0; start < len(msgs); start += chunk {
		todo := msgs[start:min(start+chunk, len(msgs))]
		deadline := time.Now().Add(time.Minute)
		for len(todo) > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d events not acknowledged for a minute", len(todo))
			}
			futures := make([]jetstream.PubAckFuture, len(todo))
			var failed []faultMsg
			for i, m := range todo {
				msg := nats.NewMsg(m.subject)
				msg.Data = m.data
				msg.Header.Set(jetstream.MsgIDHeader, m.msgID)
				f, err := js.PublishMsgAsync(msg)
				if err != nil {
					failed = append(failed, m)
					continue
				}
				futures[i] = f
			}
			for i, fut := range futures {
				if fut == nil {
					continue
				}
				select {
				case <-fut.Ok():
				case <-fut.Err():
					failed = append(failed, todo[i])
				}
			}
			if len(failed) > 0 {
				time.Sleep(50 * time.Millisecond) // back off while NATS restarts
			}
			todo = failed
		}
		sent.Store(int64(min(start+chunk, len(msgs))))
	}
	return nil
}

// faultChild is one sharesd child process.
type faultChild struct {
	cmd      *exec.Cmd
	out      *faultBuffer
	finished chan struct{}
	err      error // set when finished is closed
}

func startFaultChild(t *testing.T, bin string, env []string, args ...string) *faultChild {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	c := &faultChild{cmd: cmd, out: &faultBuffer{}, finished: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sharesd: %v", err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.finished)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.finished
		if t.Failed() {
			t.Logf("sharesd %s (pid %d) log tail:\n%s", args[0], cmd.Process.Pid, c.out.tail(15))
		}
	})
	return c
}

// faultProc is a running sharesd: a child process or an in-process run.
type faultProc interface {
	// alive returns why the process has stopped, or nil.
	alive() error
}

func (c *faultChild) alive() error {
	if c.exited() {
		return fmt.Errorf("sharesd exited: %v\n%s", c.err, c.out.tail(30))
	}
	return nil
}

func (c *faultChild) exited() bool {
	select {
	case <-c.finished:
		return true
	default:
		return false
	}
}

// kill kills the process with SIGKILL and waits for it to be gone.
func (c *faultChild) kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !c.exited() {
		t.Fatalf("SIGKILL: %v", err)
	}
	<-c.finished
}

// term sends SIGTERM and waits (at most 20s) for the process to exit. It
// returns how long that took and the process's exit error.
func (c *faultChild) term(t testing.TB) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-c.finished:
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM\n%s", c.out.tail(20))
	}
	return time.Since(start), c.err
}

// waitAddr waits for the process's "listening" log line and returns the
// address it names.
func (c *faultChild) waitAddr(t testing.TB) string {
	t.Helper()
	return faultWaitAddr(t, c, c.out)
}

// faultWaitAddr waits for the "listening" line of a JSON log and returns
// the address it names.
func faultWaitAddr(t testing.TB, proc faultProc, out *faultBuffer) string {
	t.Helper()
	var addr string
	faultWaitFor(t, 15*time.Second, func() error {
		if err := proc.alive(); err != nil {
			t.Fatal(err)
		}
		for _, line := range out.lines() {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" && l.Addr != "" {
				addr = l.Addr
				return nil
			}
		}
		return errors.New("no \"listening\" log line yet")
	})
	return addr
}

// faultBuffer collects a child's output for the test to read while the
// child writes it.
type faultBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *faultBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *faultBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *faultBuffer) lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func (b *faultBuffer) tail(n int) string {
	l := b.lines()
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// faultWaitFor calls f every 10ms until it returns nil, and fails the test
// with f's last error when timeout passes first.
func faultWaitFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// faultPause waits d: the random moment of a fault, not synchronisation.
func faultPause(t testing.TB, d time.Duration) {
	t.Helper()
	start := time.Now()
	faultWaitFor(t, d+time.Second, func() error {
		if time.Since(start) < d {
			return errors.New("not yet")
		}
		return nil
	})
}

// faultShare is a row of the API's list.
type faultShare struct {
	ID         string `json:"id"`
	ClickCount int64  `json:"clickCount"`
}

type faultReply struct {
	status     int
	retryAfter string
	shares     []faultShare
}

var faultClient = &http.Client{Timeout: 5 * time.Second}

// faultGet lists a render's shares through the API at addr.
func faultGet(t testing.TB, addr, render, key string) faultReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/renders/"+render+"/shares", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := faultClient.Do(req)
	if err != nil {
		return faultReply{status: -1}
	}
	defer resp.Body.Close()
	r := faultReply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode == http.StatusOK {
		var body struct{ Shares []faultShare }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return faultReply{status: -2}
		}
		r.shares = body.Shares
	}
	return r
}

// faultReaders read the API continuously, recording every answer, and
// check at the end that each status was 200 or 503 and that no answer
// showed fewer shares or a lower count than one completed before it began.
type faultReaders struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	reads    map[string][]faultRead // by render
	statuses map[int]int
	n        atomic.Int64
}

type faultRead struct {
	start, end time.Time
	status     int
	clicks     map[string]int64
}

func startFaultReaders(t *testing.T, addr string, w *faultWork, renders []string, n int) *faultReaders {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &faultReaders{cancel: cancel, reads: map[string][]faultRead{}, statuses: map[int]int{}}
	for i := range n {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for j := i; ctx.Err() == nil; j++ {
				render := renders[j%len(renders)]
				start := time.Now()
				got := faultGet(t, addr, render, w.keyOf(render))
				rd := faultRead{start: start, end: time.Now(), status: got.status, clicks: map[string]int64{}}
				for _, s := range got.shares {
					rd.clicks[s.ID] = s.ClickCount
				}
				r.mu.Lock()
				r.reads[render] = append(r.reads[render], rd)
				r.statuses[got.status]++
				r.mu.Unlock()
				r.n.Add(1)
			}
		}()
	}
	t.Cleanup(func() { r.cancel(); r.wg.Wait() })
	return r
}

func (r *faultReaders) count() int64 { return r.n.Load() }

// stop stops the readers and checks what they saw.
func (r *faultReaders) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for s, n := range r.statuses {
		if s != http.StatusOK && s != http.StatusServiceUnavailable {
			t.Errorf("%d reads answered status %d, want only 200 or 503", n, s)
		}
	}
	if r.statuses[http.StatusOK] == 0 {
		t.Errorf("no read answered 200 (statuses %v)", r.statuses)
	}
	for render, reads := range r.reads {
		if err := faultMonotonic(reads); err != nil {
			t.Errorf("render %s: %v", render, err)
		}
	}
	t.Logf("reads by status: %v", r.statuses)
}

// faultMonotonic checks that no 200 read shows fewer shares, or a lower
// count of a share, than some 200 read that ended before it started.
func faultMonotonic(reads []faultRead) error {
	var ok []faultRead
	for _, rd := range reads {
		if rd.status == http.StatusOK {
			ok = append(ok, rd)
		}
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].end.Before(ok[j].end) })
	// floor[i] is the largest count of each share over ok[:i+1].
	floor := make([]map[string]int64, len(ok))
	for i, rd := range ok {
		m := map[string]int64{}
		if i > 0 {
			for k, v := range floor[i-1] {
				m[k] = v
			}
		}
		for k, v := range rd.clicks {
			m[k] = max(m[k], v)
		}
		floor[i] = m
	}
	for _, rd := range ok {
		i := sort.Search(len(ok), func(i int) bool { return !ok[i].end.Before(rd.start) }) - 1
		if i < 0 {
			continue
		}
		for share, n := range floor[i] {
			got, listed := rd.clicks[share]
			if !listed || got < n {
				return fmt.Errorf("a read at %s shows share %s with clickCount %d (listed %t), but an earlier read showed %d",
					rd.start.Format("15:04:05.000"), share, got, listed, n)
			}
		}
	}
	return nil
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

func faultUUID(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newFaultWork(seed uint64, projects, renders, sharesPer, n int) *faultWork {
	rng := rand.New(rand.NewPCG(seed, 0xfa017))
	w := &faultWork{renderProject: map[string]string{}, shares: map[string][]string{}, keys: map[string]string{}}
	for i := range projects {
		p := faultUUID(rng)
		w.projects = append(w.projects, p)
		w.keys[p] = fmt.Sprintf("ck_live_fault_%d_%d", seed, i)
		sum := sha256.Sum256([]byte(w.keys[p]))
		keyID := fmt.Sprintf("key_%d_%d", seed, i)
		w.setup = append(w.setup, faultMsg{subject: events.Subject(events.TypeAPIKeyCreated, keyID), msgID: "setup-" + keyID,
			data: fmt.Appendf(nil, `{"id":"setup-%s","type":"apikey.created","occurredAt":"2026-06-05T10:00:00Z","projectId":"%s","data":{"keyId":"%s","keyHash":"%s","environment":"live"}}`,
				keyID, p, keyID, hex.EncodeToString(sum[:]))})
	}
	var all [][2]string // (render, share)
	for i := range renders {
		r := faultUUID(rng)
		w.renders = append(w.renders, r)
		w.renderProject[r] = w.projects[i%projects]
		w.setup = append(w.setup, w.event(r, events.TypeRenderCreated, "setup-render-"+r, `{}`))
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
			place(w.event(rs[0], events.TypeShareRevoked, fmt.Sprintf("revoke-%s-%s", rs[0], rs[1]),
				fmt.Sprintf(`{"shareId":"%s","revokedAt":"2026-06-05T13:00:00.123456Z","reason":"revoked_by_partner"}`, rs[1])), n)
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

func (w *faultWork) event(render string, typ events.Type, id, data string) faultMsg {
	return faultMsg{subject: events.Subject(typ, render), msgID: id,
		data: fmt.Appendf(nil, `{"id":"%s","type":"%s","occurredAt":"2026-06-05T10:00:00Z","projectId":"%s","renderId":"%s","data":%s}`,
			id, typ, w.renderProject[render], render, data)}
}

func (w *faultWork) view(render, share, id string) faultMsg {
	return w.event(render, events.TypeShareViewed, id, fmt.Sprintf(`{"shareId":"%s","viewedAt":"2026-06-05T12:00:00Z"}`, share))
}

func (w *faultWork) created(render, share string, rng *rand.Rand) faultMsg {
	return w.event(render, events.TypeShareCreated, "create-"+render+"-"+share, fmt.Sprintf(
		`{"shareId":"%s","channel":"link","recipientEmail":null,"message":"for %s","expiresAt":null,"createdAt":"2026-06-05T10:%02d:%02d.%06dZ","shareToken":"cks_%s"}`,
		share, share, rng.IntN(60), rng.IntN(60), rng.IntN(1e6), share))
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
		m.data = bytes.Replace(m.data, []byte(`"2026-06-05T12:00:00Z"}`), []byte(`"yesterday"}`), 1)
	case 5:
		m.data = append(bytes.TrimSuffix(m.data, []byte("}")), fmt.Sprintf(`,"pad":"%s"}`, strings.Repeat("x", events.MaxSize))...)
	}
	return m
}
