package main

// Tests of `sharesd rebuild` and `sharesd verify`, run in process through
// run() against an embedded NATS and a real redis-server, with a live
// projector (`sharesd serve`, also in process) where the test needs one.
// They share the crash tests' helpers (fault_test.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// TestRebuildUnderLoad rebuilds the whole read model while events keep
// arriving and the API is read continuously: every read answers 200 or
// 503, no read goes backwards, the new generation replaces the old one,
// whose keys are then deleted, and the result equals the model.
func TestRebuildUnderLoad(t *testing.T) {
	faultLong(t)
	t.Parallel()
	f := newFaultEnv(t, "")
	w := newFaultWork(11, 2, 60, 3, 30_000)
	f.publishSetup(t, w)
	f.publishAll(t, w.msgs)
	srv := f.serveInProcess(t, "serve", nil)
	f.waitCaughtUp(t, srv, 60*time.Second)
	old := f.control(t).Active

	readers := startFaultReaders(t, srv.addr, w, w.renders[:12], 3)
	live := f.publishLive(t, w, w.renders)
	stdout, stderr, err := f.run(t, context.Background(), nil, "rebuild")
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, polltest.Tail(stderr, 20))
	}
	live.stop(t)
	f.waitCaughtUp(t, srv, 60*time.Second)
	readers.stop(t)

	gen := f.control(t).Active
	if gen == old {
		t.Fatalf("active generation is still %s after the rebuild", old)
	}
	if want := "generation " + gen + " rebuilt and active"; !strings.Contains(stdout, want) {
		t.Errorf("rebuild printed %q, want %q", stdout, want)
	}
	if !strings.Contains(stderr, `"msg":"rebuild progress"`) || !strings.Contains(stderr, `"events_per_s"`) || !strings.Contains(stderr, `"eta"`) {
		t.Errorf("rebuild logged no progress with a rate and an ETA:\n%s", polltest.Tail(stderr, 10))
	}
	f.waitGenGone(t, old)
	t.Logf("rebuilt while %d live views arrived", live.views.Load())
	f.checkExact(t, w.plus(int(live.views.Load())))
}

// TestRebuildRenderUnderLoad rebuilds one render, whose click counts were
// damaged, while it receives views: its reads never go backwards, it ends
// exact, and the other renders are not touched.
func TestRebuildRenderUnderLoad(t *testing.T) {
	faultLong(t)
	t.Parallel()
	f := newFaultEnv(t, "")
	w := newFaultWork(12, 2, 30, 3, 8_000)
	f.publishSetup(t, w)
	f.publishAll(t, w.msgs)
	srv := f.serveInProcess(t, "serve", nil)
	f.waitCaughtUp(t, srv, 60*time.Second)

	target := w.renders[0]
	share := w.shares[target][0]
	f.addClicks(t, target, share, -3) // as if three views had been lost
	if _, _, err := f.run(t, context.Background(), nil, "verify", "-render", target); err == nil {
		t.Fatal("verify finds no drift in the damaged render")
	}
	others := map[string]string{}
	for _, r := range w.renders[1:] {
		others[r] = f.snapshot(t, w, r)
	}

	readers := startFaultReaders(t, srv.addr, w, []string{target}, 2)
	live := f.publishLive(t, w, []string{target})
	polltest.WaitFor(t, 10*time.Second, func() error { // the render is busy
		if n := live.views.Load(); n < 200 {
			return fmt.Errorf("%d live views so far", n)
		}
		return nil
	})
	stdout, stderr, err := f.run(t, context.Background(), nil, "rebuild", "-render", target)
	if err != nil {
		t.Fatalf("rebuild -render: %v\n%s", err, polltest.Tail(stderr, 20))
	}
	polltest.WaitFor(t, 10*time.Second, func() error { // and stays busy after the swap
		if n := readers.count(); n < 50 {
			return fmt.Errorf("%d reads", n)
		}
		return nil
	})
	live.stop(t)
	f.waitCaughtUp(t, srv, 60*time.Second)
	readers.stop(t)
	if want := "render " + target + " rebuilt and swapped in"; !strings.Contains(stdout, want) {
		t.Errorf("rebuild -render printed %q, want %q", stdout, want)
	}
	for r, before := range others {
		if got := f.snapshot(t, w, r); got != before {
			t.Errorf("render %s changed though only %s was rebuilt:\nbefore %s\nafter  %s", r, target, before, got)
		}
	}
	gens, err := f.store.Generations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gen := readmodel.ScratchGen(f.control(t).Active); gens[gen] != 0 {
		t.Errorf("the scratch copy %s still has %d keys", gen, gens[gen])
	}
	f.checkExact(t, w.plus(int(live.views.Load())))
}

// TestRebuildTruncatedStream: a stream that lost its first events (here to
// MaxMsgs) makes a full rebuild refuse, naming what is missing.
func TestRebuildTruncatedStream(t *testing.T) {
	t.Parallel()
	ns := natstest.StartServer(t, "")
	nc, js := natstest.Connect(t, ns)
	cfg := projector.StreamConfig()
	cfg.MaxMsgs = 5
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	w := newFaultWork(13, 1, 10, 1, 0)
	for _, m := range w.setup[:10] {
		natstest.Publish(t, js, m.subject, m.data, m.msgID)
	}
	rs := redistest.Start(t)
	f := &faultEnv{ns: ns, nc: nc, js: js, redis: rs, store: testStore(rs.Client(t), 0)}
	_, _, err := f.run(t, context.Background(), nil, "rebuild")
	if err == nil {
		t.Fatal("rebuild of a stream starting at sequence 6 succeeded, want an error")
	}
	for _, want := range []string{"1..5", "partial"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("rebuild error %q does not say %q", err, want)
		}
	}
	if ctl := f.control(t); ctl.Active != "" || ctl.Building != "" {
		t.Errorf("the refused rebuild left control state %+v", ctl)
	}
}

// TestRebuildInterruptedResumes cancels a rebuild mid-way: its generation
// and position stay, and the next rebuild resumes from that position and
// finishes with the exact model.
func TestRebuildInterruptedResumes(t *testing.T) {
	faultLong(t)
	t.Parallel()
	f := newFaultEnv(t, "")
	w := newFaultWork(14, 2, 40, 3, 20_000)
	f.publishSetup(t, w)
	f.publishAll(t, w.msgs)
	head := f.head(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		stdout, stderr string
		err            error
	}
	done := make(chan result, 1)
	go func() {
		// Small batches make the replay long enough to interrupt.
		o, e, err := f.run(t, ctx, map[string]string{"BATCH_SIZE": "8"}, "rebuild")
		done <- result{o, e, err}
	}()
	var gen string
	polltest.WaitFor(t, 30*time.Second, func() error {
		select {
		case r := <-done:
			t.Fatalf("rebuild ended before it could be interrupted: %v\n%s", r.err, r.stdout)
		default:
		}
		ctl := f.control(t)
		if ctl.Building == "" || ctl.Pos[ctl.Building] < head/10 {
			return fmt.Errorf("building %q at %d", ctl.Building, ctl.Pos[ctl.Building])
		}
		gen = ctl.Building
		return nil
	})
	cancel()
	r := <-done
	if r.err == nil || !strings.Contains(r.err.Error(), "interrupted") {
		t.Fatalf("interrupted rebuild returned %v, want an error saying it was interrupted", r.err)
	}
	ctl := f.control(t)
	saved := ctl.Pos[gen]
	if ctl.Building != gen || saved == 0 || saved >= head || ctl.Active != "" {
		t.Fatalf("after the interruption: control %+v, want %s still building with a position in 1..%d", ctl, gen, head-1)
	}

	stdout, stderr, err := f.run(t, context.Background(), nil, "rebuild")
	if err != nil {
		t.Fatalf("second rebuild: %v\n%s", err, polltest.Tail(stderr, 20))
	}
	if want := "generation " + gen + " rebuilt and active"; !strings.Contains(stdout, want) {
		t.Errorf("second rebuild printed %q, want %q (the same generation, resumed)", stdout, want)
	}
	if first := faultFirstProgress(t, stderr); first != saved {
		t.Errorf("second rebuild started at position %d, want the saved %d", first, saved)
	}
	f.checkExact(t, w)
}

// TestVerify: verify exits 0 on a correct read model and reports DRIFT,
// failing, after a click counter is changed by hand.
func TestVerify(t *testing.T) {
	t.Parallel()
	f := newFaultEnv(t, "")
	w := newFaultWork(15, 2, 8, 3, 2_000)
	f.publishSetup(t, w)
	f.publishAll(t, w.msgs)
	srv := f.serveInProcess(t, "projector", nil)
	f.waitCaughtUp(t, srv, 30*time.Second)
	ctx := context.Background()

	stdout, _, err := f.run(t, ctx, nil, "verify")
	if err != nil {
		t.Fatalf("verify of a correct model: %v\n%s", err, stdout)
	}
	if want := fmt.Sprintf("checked %d renders and %d API keys", len(w.renders), len(w.keys)); !strings.Contains(stdout, want) || !strings.Contains(stdout, ": 0 differ") {
		t.Errorf("verify printed %q, want %q and no difference", stdout, want)
	}
	if stdout, _, err := f.run(t, ctx, nil, "verify", "--renders", "3"); err != nil || !strings.Contains(stdout, "checked 3 renders") {
		t.Errorf("verify --renders 3: %v, printed %q", err, stdout)
	}

	bad := w.renders[2]
	f.addClicks(t, bad, w.shares[bad][1], 1)
	stdout, _, err = f.run(t, ctx, nil, "verify")
	if err == nil {
		t.Fatalf("verify after corrupting a counter succeeded:\n%s", stdout)
	}
	if !strings.Contains(stdout, "DRIFT "+bad) || strings.Count(stdout, "DRIFT") != 1 {
		t.Errorf("verify printed %q, want one DRIFT line naming %s", stdout, bad)
	}
	if stdout, _, err := f.run(t, ctx, nil, "verify", "-render", w.renders[3]); err != nil {
		t.Errorf("verify -render of an intact render: %v\n%s", err, stdout)
	}
}

// TestStartupWarnings: a stream that can lose history and a Redis that can
// evict keys are both reported by `sharesd projector` at start-up; a safe
// set-up is not.
func TestStartupWarnings(t *testing.T) {
	t.Parallel()
	t.Run("unsafe", func(t *testing.T) {
		t.Parallel()
		ns := natstest.StartServer(t, "")
		nc, js := natstest.Connect(t, ns)
		cfg := projector.StreamConfig()
		cfg.MaxAge = 30 * 24 * time.Hour
		if _, err := js.CreateStream(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		rs := redistest.Start(t, "--maxmemory-policy", "allkeys-lru")
		f := &faultEnv{ns: ns, nc: nc, js: js, redis: rs, store: testStore(rs.Client(t), 0)}
		srv := f.serveInProcess(t, "projector", nil)
		polltest.WaitFor(t, 15*time.Second, func() error {
			if err := srv.alive(); err != nil {
				t.Fatal(err)
			}
			logs := srv.logs.String()
			for _, want := range []string{"stream can lose history", "max age 720h0m0s", "maxmemory-policy", "allkeys-lru"} {
				if !strings.Contains(logs, want) {
					return fmt.Errorf("no %q in the logs yet", want)
				}
			}
			return nil
		})
	})
	t.Run("safe", func(t *testing.T) {
		t.Parallel()
		f := newFaultEnv(t, "")
		srv := f.serveInProcess(t, "projector", nil)
		f.waitCaughtUp(t, srv, 15*time.Second) // the checks ran before the projector
		logs := srv.logs.String()
		for _, unwanted := range []string{"stream can lose history", "can evict"} {
			if strings.Contains(logs, unwanted) {
				t.Errorf("the logs of a safe set-up say %q:\n%s", unwanted, polltest.Tail(logs, 20))
			}
		}
	})
}

// TestStreamWentBackwards deletes the stream under a running projector and
// recreates it with fewer events: the projector says so loudly and ends
// with the model of the new stream, forgetting the old one.
func TestStreamWentBackwards(t *testing.T) {
	t.Parallel()
	f := newFaultEnv(t, "")
	old := newFaultWork(16, 1, 20, 2, 3_000)
	f.publishSetup(t, old)
	f.publishAll(t, old.msgs)
	srv := f.serveInProcess(t, "serve", nil)
	f.waitCaughtUp(t, srv, 30*time.Second)
	oldGen := f.control(t).Active

	ctx := context.Background()
	if err := f.js.DeleteStream(ctx, events.Stream); err != nil {
		t.Fatalf("delete stream: %v", err)
	}
	if _, err := f.js.CreateStream(ctx, projector.StreamConfig()); err != nil {
		t.Fatalf("recreate stream: %v", err)
	}
	w := newFaultWork(17, 1, 10, 2, 500)
	f.publishSetup(t, w)
	f.publishAll(t, w.msgs)
	polltest.WaitFor(t, 30*time.Second, func() error {
		if err := srv.alive(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(srv.logs.String(), "STREAM WENT BACKWARDS") {
			return errors.New("no STREAM WENT BACKWARDS in the logs yet")
		}
		if gen := f.control(t).Active; gen == oldGen {
			return fmt.Errorf("generation %s of the old stream is still active", gen)
		}
		return nil
	})
	f.waitCaughtUp(t, srv, 30*time.Second)
	f.checkExact(t, w)
	r := old.renders[0]
	if _, err := f.store.List(ctx, old.renderProject[r], r, nil); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("render %s of the old stream: list error %v, want not found", r, err)
	}
	if got := faultGet(srv.addr, r, old.keyOf(r)).status; got != http.StatusUnauthorized {
		t.Errorf("the old stream's key: status %d, want 401 (the key is gone with its stream)", got)
	}
}

// addClicks changes a share's click counter in the active generation by
// hand, as drift would.
func (f *faultEnv) addClicks(t testing.TB, render, share string, n int64) {
	t.Helper()
	ctx := context.Background()
	gen := f.control(t).Active
	if err := f.store.AddViews(ctx, gen, render, share, n); err != nil {
		t.Fatalf("add %d views to %s/%s in generation %s: %v", n, render, share, gen, err)
	}
}

// snapshot is a render's list as the API would render it, with its
// sequence and version.
func (f *faultEnv) snapshot(t testing.TB, w *faultWork, render string) string {
	t.Helper()
	l, err := f.store.List(context.Background(), w.renderProject[render], render, nil)
	if err != nil {
		t.Fatalf("list %s: %v", render, err)
	}
	var b strings.Builder
	for s, err := range l.Shares() {
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, " %s:%+v", s.ID, s) // every field, byte slices as numbers
	}
	return fmt.Sprintf("seq=%d ver=%d%s", l.Seq, l.Ver, b.String())
}

// waitGenGone waits until no key of generation gen is left.
func (f *faultEnv) waitGenGone(t testing.TB, gen string) {
	t.Helper()
	polltest.WaitFor(t, 20*time.Second, func() error {
		gens, err := f.store.Generations(context.Background())
		if err != nil {
			return err
		}
		if n := gens[gen]; n > 0 {
			return fmt.Errorf("generation %s still has %d keys", gen, n)
		}
		if _, ok := f.control(t).Pos[gen]; ok {
			return fmt.Errorf("generation %s still has a position", gen)
		}
		return nil
	})
}

// faultFirstProgress is the position of the first "rebuild progress" log
// line in a JSON log: where the rebuild started.
func faultFirstProgress(t testing.TB, logs string) uint64 {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Msg  string
			Done uint64 `json:"done"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "rebuild progress" {
			return l.Done
		}
	}
	t.Fatalf("no rebuild progress in the logs:\n%s", polltest.Tail(logs, 10))
	return 0
}
