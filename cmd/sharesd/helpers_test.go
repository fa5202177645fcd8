package main

// Helpers of the crash and rebuild tests (fault_test.go, rebuild_test.go):
// servers, sharesd as a child process or in process, publishers that retry
// like real ones, and API readers that check what they saw. Every name
// starts with fault, so it cannot clash with other tests of the package.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
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
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

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
	nc, js := natstest.Connect(t, ns, jetstream.WithPublishAsyncTimeout(5*time.Second), jetstream.WithPublishAsyncMaxPending(2000))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := projector.EnsureStreams(ctx, js); err != nil {
		t.Fatalf("streams: %v", err)
	}
	rs := redistest.Start(t)
	return &faultEnv{bin: bin, ns: ns, nc: nc, js: js, redis: rs, store: testStore(rs.Client(t), readmodel.DefaultHorizon)}
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

// dropLease frees the partition leases and membership of the projectors
// that hold any (a process that was killed), as a supervisor that knows
// they are dead would.
func (f *faultEnv) dropLease(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for _, token := range f.leaseOwners(t) {
		if err := f.store.ReleaseLeases(ctx, token, nil, true); err != nil {
			t.Fatalf("drop leases: %v", err)
		}
	}
}

// leaseOwners returns the distinct tokens that hold partition leases.
func (f *faultEnv) leaseOwners(t testing.TB) []string {
	t.Helper()
	owners, err := f.store.LeaseOwners(context.Background())
	if err != nil {
		t.Fatalf("lease owners: %v", err)
	}
	var out []string
	for _, o := range owners {
		if o != "" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// waitCaughtUp waits until the active generation's saved position has
// reached the stream's head (the projector saves it within a second of
// going idle), failing early if the projector's process is gone.
func (f *faultEnv) waitCaughtUp(t testing.TB, proc faultProc, timeout time.Duration) {
	t.Helper()
	polltest.WaitFor(t, timeout, func() error {
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

// maxRenderSeq is the highest stream sequence applied to any of w's
// renders in the active generation, read from the renders' own guards
// (List's Seq).
func (f *faultEnv) maxRenderSeq(t testing.TB, w *faultWork) uint64 {
	t.Helper()
	var top uint64
	for _, r := range w.renders {
		l, err := f.store.List(context.Background(), w.renderProject[r], r, nil)
		if err != nil {
			t.Fatalf("list %s: %v", r, err)
		}
		top = max(top, l.Seq)
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
		for s, err := range l.Shares() {
			if err != nil {
				t.Fatal(err)
			}
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
	polltest.WaitFor(t, 15*time.Second, func() error {
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
	out      *polltest.Buffer
	finished chan struct{}
	err      error // set when finished is closed
}

func startFaultChild(t *testing.T, bin string, env []string, args ...string) *faultChild {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	c := &faultChild{cmd: cmd, out: &polltest.Buffer{}, finished: make(chan struct{})}
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
			t.Logf("sharesd %s (pid %d) log tail:\n%s", args[0], cmd.Process.Pid, c.out.Tail(15))
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
		return fmt.Errorf("sharesd exited: %v\n%s", c.err, c.out.Tail(30))
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
		t.Fatalf("still running 20s after SIGTERM\n%s", c.out.Tail(20))
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
func faultWaitAddr(t testing.TB, proc faultProc, out *polltest.Buffer) string {
	t.Helper()
	var addr string
	polltest.WaitFor(t, 15*time.Second, func() error {
		if err := proc.alive(); err != nil {
			t.Fatal(err)
		}
		for _, line := range out.Lines() {
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

// faultGet lists a render's shares through the API at addr. A request
// that gets no answer has status -1, a 200 with a bad body -2.
func faultGet(addr, render, key string) faultReply {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/renders/"+render+"/shares", nil)
	if err != nil {
		return faultReply{status: -1}
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
				got := faultGet(addr, render, w.keyOf(render))
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

// faultServe is `sharesd serve|projector|api` running in process.
type faultServe struct {
	addr   string
	logs   *polltest.Buffer
	cancel context.CancelFunc
	done   chan error
}

func (s *faultServe) alive() error {
	select {
	case err := <-s.done:
		s.done <- err // keep it for the cleanup
		return fmt.Errorf("sharesd returned %v\n%s", err, s.logs.Tail(30))
	default:
		return nil
	}
}

func (f *faultEnv) getenv(extra map[string]string) func(string) string {
	vars := map[string]string{"NATS_URL": f.ns.ClientURL(), "REDIS_URL": f.redis.URL, "LOG_FORMAT": "json"}
	for k, v := range extra {
		vars[k] = v
	}
	return func(k string) string { return vars[k] }
}

// serveInProcess runs `sharesd sub` through run() until the test ends.
func (f *faultEnv) serveInProcess(t *testing.T, sub string, extra map[string]string) *faultServe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &faultServe{logs: &polltest.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- run(ctx, []string{sub, "-http-addr", "127.0.0.1:0"}, f.getenv(extra), strings.NewReader(""), s.logs, s.logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("sharesd %s returned %v", sub, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("sharesd %s did not return within 15s of its context ending", sub)
		}
		if t.Failed() {
			t.Logf("sharesd %s log tail:\n%s", sub, s.logs.Tail(15))
		}
	})
	s.addr = faultWaitAddr(t, s, s.logs)
	return s
}

// run runs `sharesd args…` in process and returns its output.
func (f *faultEnv) run(t testing.TB, ctx context.Context, extra map[string]string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, f.getenv(extra), strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func (f *faultEnv) control(t testing.TB) readmodel.Control {
	t.Helper()
	ctl, err := f.store.ReadControl(context.Background())
	if err != nil {
		t.Fatalf("read control: %v", err)
	}
	return ctl
}

func (f *faultEnv) publishAll(t testing.TB, msgs []faultMsg) {
	t.Helper()
	var n atomic.Int64
	if err := faultPublishAll(f.js, msgs, &n); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// faultLive publishes views to renders, about a thousand a second, until
// stopped, counting them.
type faultLive struct {
	views    atomic.Int64
	quit     chan struct{}
	finished chan struct{}
	err      error
}

func (f *faultEnv) publishLive(t *testing.T, w *faultWork, renders []string) *faultLive {
	t.Helper()
	l := &faultLive{quit: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(l.finished)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		var sent atomic.Int64
		for n := 0; ; n++ {
			select {
			case <-l.quit:
				return
			case <-tick.C:
			}
			msgs := make([]faultMsg, 25)
			for i := range msgs {
				r := renders[(n+i)%len(renders)]
				msgs[i] = w.view(r, w.shares[r][i%len(w.shares[r])], fmt.Sprintf("live-%d-%d", n, i))
			}
			if l.err = faultPublishAll(f.js, msgs, &sent); l.err != nil {
				return
			}
			l.views.Add(int64(len(msgs)))
		}
	}()
	t.Cleanup(func() { l.stop(t) })
	return l
}

func (l *faultLive) stop(t testing.TB) {
	t.Helper()
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.finished
	if l.err != nil {
		t.Fatalf("live publish: %v", l.err)
	}
}

// plus is w with n more distinct views (published live).
func (w *faultWork) plus(n int) *faultWork {
	c := *w
	c.views += n
	return &c
}

// testStore is the read model on rdb as the sharesd commands see it by
// default: events.DefaultPartitions partitions.
func testStore(rdb redis.UniversalClient, horizon time.Duration) *readmodel.Store {
	s := readmodel.New(rdb, horizon)
	s.SetPartitions(events.DefaultPartitions)
	return s
}
