package main

// End-to-end tests of `sharesd serve`, `api` and `projector` through run,
// as main calls it: a real NATS server, a real redis-server, a real
// listener, fake args and environment, and output captured in buffers.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// freeAddr is a loopback address whose port was free a moment ago: the
// -http-addr of a sharesdProc under test, known before it starts.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sharesdProc is one `sharesd <subcommand>` running in the test through run.
type sharesdProc struct {
	addr   string // its HTTP_ADDR
	stdout *polltest.Buffer
	stderr *polltest.Buffer
	cancel context.CancelFunc
	done   chan error // run's result
}

// startProcess runs `sharesd args…` with vars as its environment (plus
// HTTP_ADDR, a free port) until the test ends, and waits for /healthz.
func startProcess(t testing.TB, vars map[string]string, args ...string) *sharesdProc {
	t.Helper()
	env := map[string]string{"LOG_LEVEL": "debug", "LOG_FORMAT": "json", "HTTP_ADDR": freeAddr(t)}
	for k, v := range vars {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &sharesdProc{addr: env["HTTP_ADDR"], stdout: new(polltest.Buffer), stderr: new(polltest.Buffer), cancel: cancel, done: make(chan error, 1)}
	go func() {
		p.done <- run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), p.stdout, p.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Errorf("sharesd %s did not return within 15s of its context's end", args[0])
		}
		if t.Failed() {
			t.Logf("sharesd %s stderr:\n%s", args[0], p.stderr)
		}
	})
	polltest.WaitFor(t, 10*time.Second, func() error {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("sharesd %s returned early: %v\n%s", args[0], err, p.stderr)
		default:
		}
		r, err := p.get("/healthz", nil)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK {
			return fmt.Errorf("/healthz = %d", r.status)
		}
		return nil
	})
	return p
}

// httpReply is an HTTP response with its body read.
type httpReply struct {
	status int
	header http.Header
	body   []byte
}

// get requests path from p with header, on a fresh connection.
func (p *sharesdProc) get(path string, header http.Header) (httpReply, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+p.addr+path, nil)
	if err != nil {
		return httpReply{}, err
	}
	req.Header = header.Clone()
	return doRequest(req)
}

func doRequest(req *http.Request) (httpReply, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return httpReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpReply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// mustGet is get for a httpReply the test needs: any transport error
// fails, and so does a httpReply without X-Request-Id.
func (p *sharesdProc) mustGet(t testing.TB, path string, header http.Header) httpReply {
	t.Helper()
	r, err := p.get(path, header)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Errorf("GET %s: %d without X-Request-Id", path, r.status)
	}
	return r
}

func demoAuth() http.Header { return http.Header{"Authorization": {"Bearer " + demoKey}} }

// demoShare is a share of the list as a client decodes it.
type demoShare struct {
	ID            string  `json:"id"`
	RevokedAt     *string `json:"revokedAt"`
	RevokedReason *string `json:"revokedReason"`
	CreatedAt     string  `json:"createdAt"`
	ClickCount    int     `json:"clickCount"`
	ShareURL      string  `json:"shareUrl"`
}

func decodeShares(t testing.TB, r httpReply) []demoShare {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200: %s", r.status, r.body)
	}
	var body struct{ Shares []demoShare }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return body.Shares
}

// wantJSONStatus checks a /readyz-style body {"status": …, "reason": …}.
func wantJSONStatus(t testing.TB, r httpReply, status int, want string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.body)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	var body struct{ Status, Reason string }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	if body.Status != want {
		t.Errorf("status field = %q, want %q (%s)", body.Status, want, r.body)
	}
	return body.Reason
}

// seed runs `sharesd seed` against natsURL and returns its stdout.
func runSeedCmd(t testing.TB, natsURL string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	vars := map[string]string{"NATS_URL": natsURL, "LOG_LEVEL": "debug"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, []string{"seed"}, func(k string) string { return vars[k] }, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("sharesd seed: %v\n%s", err, stderr.String())
	}
	assertNoSecrets(t, "sharesd seed stderr", stderr.String())
	return stdout.String()
}

// assertNoSecrets fails when out holds the demo key or its hash. (Only the
// stdout of seed and dev may print the demo key, which is public on
// purpose.)
func assertNoSecrets(t testing.TB, what, out string) {
	t.Helper()
	for name, secret := range map[string]string{"the demo key": demoKey, "its SHA-256": events.KeyHash(demoKey),
		"a rejected key": rejectedKey} {
		if strings.Contains(out, secret) {
			t.Errorf("%s contains %s", what, name)
		}
	}
}

// rejectedKey is a key the server refuses; it must not be logged either.
const rejectedKey = "ck_live_not_a_key_of_anyone"

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	ns := natstest.StartServer(t, "")
	rs := redistest.Start(t)
	p := startProcess(t, map[string]string{"NATS_URL": ns.ClientURL(), "REDIS_URL": rs.URL, "MIN_SEQ_WAIT": "3s"}, "serve")
	list := "/v1/renders/" + demoRender + "/shares"

	// Ready once the projector has created the streams and activated a
	// generation, even an empty one.
	polltest.WaitFor(t, 10*time.Second, func() error {
		r, err := p.get("/readyz", nil)
		if err == nil && r.status != http.StatusOK {
			err = fmt.Errorf("/readyz = %d: %s", r.status, r.body)
		}
		return err
	})
	wantJSONStatus(t, p.mustGet(t, "/readyz", nil), http.StatusOK, "ready")

	if out := runSeedCmd(t, ns.ClientURL()); !strings.Contains(out, "demo project published") {
		t.Fatalf("sharesd seed printed %q, want it to publish the demo project", out)
	}
	if out := runSeedCmd(t, ns.ClientURL()); !strings.Contains(out, "already in the stream") {
		t.Errorf("a second sharesd seed printed %q, want nothing published", out)
	}
	var shares []demoShare
	polltest.WaitFor(t, 10*time.Second, func() error {
		r := p.mustGet(t, list, demoAuth())
		if r.status != http.StatusOK {
			return fmt.Errorf("GET %s = %d: %s", list, r.status, r.body)
		}
		if shares = decodeShares(t, r); len(shares) != 3 || shares[2].ClickCount != 3 {
			return fmt.Errorf("demo not applied yet: %s", r.body)
		}
		return nil
	})
	type row struct {
		id     string
		clicks int
		reason string
	}
	var got []row
	for _, s := range shares {
		reason := "-"
		if s.RevokedReason != nil {
			reason = *s.RevokedReason
		}
		got = append(got, row{s.ID, s.ClickCount, reason})
	}
	want := []row{{"share-3", 0, "revoked_by_partner"}, {"share-2", 1, "-"}, {"share-1", 3, "-"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("demo list = %v, want %v (newest first, with counts)", got, want)
	}
	if got, want := shares[1].CreatedAt, "2026-06-05T10:06:00.123Z"; got != want {
		t.Errorf("share-2 createdAt = %q, want %q", got, want)
	}
	if got, want := shares[2].ShareURL, "https://www.craftkit.dev/share/cks_demo_link_one"; got != want {
		t.Errorf("share-1 shareUrl = %q, want %q", got, want)
	}

	// ?minSeq: an event published now is in the answer without polling.
	_, js := natstest.Connect(t, ns)
	view := eventstest.ShareViewed(demoProject, demoRender, "share-2").WithID("e2e-view")
	seq := natstest.Publish(t, js, view.Subject(), view.Body(), view.ID)
	r := p.mustGet(t, list+"?minSeq="+strconv.FormatUint(seq, 10), demoAuth())
	if shares := decodeShares(t, r); shares[1].ClickCount != 2 {
		t.Errorf("after ?minSeq=%d share-2 has %d clicks, want 2", seq, shares[1].ClickCount)
	}
	if got, _ := strconv.ParseUint(r.header.Get("X-Projection-Seq"), 10, 64); got < seq {
		t.Errorf("X-Projection-Seq = %d, want at least %d", got, seq)
	}

	// A bad event is dead-lettered and counted.
	natstest.Publish(t, js, events.Subject(events.TypeShareViewed, demoRender), []byte("not json"), "e2e-bad")
	polltest.WaitFor(t, 10*time.Second, func() error {
		if m := string(p.mustGet(t, "/metrics", nil).body); !strings.Contains(m, "sharesd_events_deadlettered_total{") {
			return errors.New("no sharesd_events_deadlettered_total yet")
		}
		return nil
	})
	// Refused requests, which must not leave the key in the logs either.
	if r := p.mustGet(t, list, http.Header{"Authorization": {"Bearer " + rejectedKey}}); r.status != http.StatusUnauthorized {
		t.Errorf("GET with a rejected key = %d, want 401", r.status)
	}
	if r := p.mustGet(t, "/nowhere", nil); r.status != http.StatusNotFound {
		t.Errorf("GET /nowhere = %d, want 404", r.status)
	}

	r = p.mustGet(t, "/metrics", nil)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type = %q, want text/plain", ct)
	}
	for _, m := range []string{
		"sharesd_events_applied_total{", "sharesd_projection_lag_events ", "sharesd_projection_lag_seconds ",
		"sharesd_apply_batch_duration_seconds_bucket{", "sharesd_events_deadlettered_total{", "sharesd_redeliveries_total ",
		`sharesd_http_request_duration_seconds_count{route="list_shares",status="200"}`,
		`sharesd_http_request_duration_seconds_count{route="list_shares",status="401"}`,
		`sharesd_http_request_duration_seconds_count{route="unmatched",status="404"}`,
	} {
		if !bytes.Contains(r.body, []byte("\n"+m)) {
			t.Errorf("/metrics has no %s", m)
		}
	}

	// The header size limit: 431 from the HTTP server itself (so without
	// X-Request-Id, which the handler sets).
	big, err := p.get(list, http.Header{"X-Big": {strings.Repeat("a", 32<<10)}})
	if err != nil {
		t.Fatalf("GET with a 32 KiB header: %v", err)
	}
	if big.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("GET with a 32 KiB header = %d, want 431", big.status)
	}

	// The healthcheck subcommand, as the containers run it.
	var hcOut bytes.Buffer
	hcEnv := map[string]string{"HTTP_ADDR": p.addr}
	if err := run(context.Background(), []string{"healthcheck"}, func(k string) string { return hcEnv[k] }, nil, &hcOut, io.Discard); err != nil {
		t.Errorf("sharesd healthcheck: %v", err)
	}
	if err := run(context.Background(), []string{"healthcheck", "-url", "http://" + p.addr + "/readyz"}, func(string) string { return "" }, nil, io.Discard, io.Discard); err != nil {
		t.Errorf("sharesd healthcheck -url …/readyz: %v", err)
	}
	if err := run(context.Background(), []string{"healthcheck", "-url", "http://" + p.addr + "/nowhere"}, func(string) string { return "" }, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("sharesd healthcheck of a 404: %v, want an error naming 404", err)
	}

	shutdownDuringMinSeq(t, p, list, seq+1000)
	assertNoSecrets(t, "sharesd serve stderr", p.stderr.String())
	assertNoSecrets(t, "sharesd serve stdout", p.stdout.String())
	if !strings.Contains(p.stderr.String(), `"msg":"request"`) {
		t.Errorf("no request was logged at debug level; the secrets check saw nothing:\n%s", p.stderr)
	}
}

// shutdownDuringMinSeq cancels p's context while a ?minSeq request that
// cannot be satisfied is waiting, and checks that the request completes at
// once (with the lower X-Projection-Seq) and run returns within 10 s.
func shutdownDuringMinSeq(t *testing.T, p *sharesdProc, list string, minSeq uint64) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+p.addr+list+"?minSeq="+strconv.FormatUint(minSeq, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = demoAuth()
	wrote := make(chan struct{})
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) },
	}))
	type result struct {
		r   httpReply
		err error
	}
	waiting := make(chan result, 1)
	start := time.Now()
	go func() {
		r, err := doRequest(req)
		waiting <- result{r, err}
	}()
	<-wrote
	// The server accepts connections in order: once a later one has been
	// answered, the waiting request's connection is accepted too, and
	// Shutdown lets an accepted request finish.
	p.mustGet(t, "/healthz", nil)

	p.cancel()
	stopped := time.Now()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Errorf("run returned %v after its context ended, want nil", err)
		}
		if d := time.Since(stopped); d > 10*time.Second {
			t.Errorf("run returned %v after its context ended, want within 10s", d)
		}
	case <-time.After(12 * time.Second):
		t.Fatal("run did not return within 12s of its context's end")
	}
	res := <-waiting
	if res.err != nil {
		t.Fatalf("the waiting ?minSeq request was cut by the shutdown: %v", res.err)
	}
	if res.r.status != http.StatusOK {
		t.Fatalf("the waiting ?minSeq request = %d, want 200: %s", res.r.status, res.r.body)
	}
	if len(decodeShares(t, res.r)) != 3 {
		t.Errorf("the waiting ?minSeq request answered %s, want the 3 demo shares", res.r.body)
	}
	if got, _ := strconv.ParseUint(res.r.header.Get("X-Projection-Seq"), 10, 64); got == 0 || got >= minSeq {
		t.Errorf("X-Projection-Seq = %d, want the applied sequence, below minSeq %d", got, minSeq)
	}
	// Shutdown ends the wait at once instead of holding the process for the
	// rest of MIN_SEQ_WAIT (3s here, up to a minute in production).
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the ?minSeq request answered after %v, want it answered as soon as shutdown began", d)
	}
}

// TestServeAPIAndProjector runs the two halves as docker compose does: an
// API alone on an empty Redis is not ready (503 with a reason) until a
// projector sharesdProc activates a generation; the projector sharesdProc serves
// health and metrics but no API.
func TestServeAPIAndProjector(t *testing.T) {
	t.Parallel()
	ns := natstest.StartServer(t, "")
	rs := redistest.Start(t)
	apiProc := startProcess(t, map[string]string{"REDIS_URL": rs.URL}, "api")
	list := "/v1/renders/" + demoRender + "/shares"

	reason := wantJSONStatus(t, apiProc.mustGet(t, "/readyz", nil), http.StatusServiceUnavailable, "unavailable")
	if reason != "no_active_generation" {
		t.Errorf("/readyz reason = %q, want no_active_generation", reason)
	}
	r := apiProc.mustGet(t, list, demoAuth())
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("GET %s without a generation = %d (Retry-After %q), want 503 with Retry-After", list, r.status, r.header.Get("Retry-After"))
	}
	if r := apiProc.mustGet(t, "/metrics", nil); r.status != http.StatusOK {
		t.Errorf("api /metrics = %d, want 200", r.status)
	}
	if err := run(context.Background(), []string{"healthcheck", "-url", "http://" + apiProc.addr + "/readyz"}, func(string) string { return "" }, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("sharesd healthcheck of a 503 /readyz: %v, want an error naming 503", err)
	}

	proj := startProcess(t, map[string]string{"NATS_URL": ns.ClientURL(), "REDIS_URL": rs.URL}, "projector")
	polltest.WaitFor(t, 10*time.Second, func() error {
		r := proj.mustGet(t, "/readyz", nil)
		if r.status != http.StatusOK {
			return fmt.Errorf("projector /readyz = %d: %s", r.status, r.body)
		}
		return nil
	})
	wantJSONStatus(t, proj.mustGet(t, "/readyz", nil), http.StatusOK, "ready")
	m := proj.mustGet(t, "/metrics", nil)
	if m.status != http.StatusOK || !bytes.Contains(m.body, []byte("sharesd_projection_lag_events")) {
		t.Errorf("projector /metrics = %d without sharesd_projection_lag_events", m.status)
	}
	if r := proj.mustGet(t, list, demoAuth()); r.status != http.StatusNotFound {
		t.Errorf("projector GET %s = %d, want 404: a projector sharesdProc serves no API", list, r.status)
	}
	polltest.WaitFor(t, 10*time.Second, func() error {
		if r := apiProc.mustGet(t, "/readyz", nil); r.status != http.StatusOK {
			return fmt.Errorf("api /readyz = %d: %s", r.status, r.body)
		}
		return nil
	})
	assertNoSecrets(t, "sharesd api stderr", apiProc.stderr.String())
}

func TestRunConfigErrors(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad CRAFTKIT_ENV", []string{"serve"}, map[string]string{"CRAFTKIT_ENV": "prod"}, `-env / CRAFTKIT_ENV: got "prod", want live or test`},
		{"bad -env", []string{"api", "-env", "staging"}, nil, `-env / CRAFTKIT_ENV: got "staging"`},
		{"DEDUPE_HORIZON not a duration", []string{"serve"}, map[string]string{"DEDUPE_HORIZON": "a day"}, `DEDUPE_HORIZON: got "a day", want a duration`},
		{"negative DEDUPE_HORIZON", []string{"projector"}, map[string]string{"DEDUPE_HORIZON": "-1h"}, "-dedupe-horizon / DEDUPE_HORIZON"},
		{"bad REDIS_URL", []string{"serve"}, map[string]string{"REDIS_URL": "http://x"}, "-redis-url / REDIS_URL"},
		{"busy HTTP_ADDR", []string{"serve"}, map[string]string{"HTTP_ADDR": busy.Addr().String()}, "-http-addr / HTTP_ADDR"},
		{"zero READY_STALL", []string{"serve"}, map[string]string{"READY_STALL": "0s"}, `-ready-stall / READY_STALL: got "0s", want a positive duration`},
		{"negative -ready-stall", []string{"projector", "-ready-stall", "-1s"}, nil, "-ready-stall / READY_STALL"},
		{"READY_STALL not a duration", []string{"serve"}, map[string]string{"READY_STALL": "soon"}, `READY_STALL: got "soon"`},
		{"LEASE_TTL too short", []string{"projector"}, map[string]string{"LEASE_TTL": "10ms"}, `-lease-ttl / LEASE_TTL: got "10ms", want a duration between 300ms and 10m`},
		{"MAX_FETCH_BYTES too small", []string{"serve"}, map[string]string{"MAX_FETCH_BYTES": "1024"}, `-max-fetch-bytes / MAX_FETCH_BYTES: got "1024", want 65536 to 1073741824`},
		{"-max-fetch-bytes not a number", []string{"projector", "-max-fetch-bytes", "8MiB"}, nil, "max-fetch-bytes"},
		{"MAX_CONNS of 1", []string{"api"}, map[string]string{"MAX_CONNS": "1"}, `-max-conns / MAX_CONNS: got "1", want 2 or more`},
		{"MAX_CONNS not a number", []string{"serve"}, map[string]string{"MAX_CONNS": "many"}, `MAX_CONNS: got "many", want an integer`},
		{"unknown subcommand", []string{"serv"}, nil, `unknown subcommand "serv"`},
		{"stray argument", []string{"api", "now"}, nil, `unexpected argument "now"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, c.args, func(k string) string { return c.env[k] }, strings.NewReader(""), io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("sharesd %s: %v, want an error containing %q", strings.Join(c.args, " "), err, c.want)
			}
		})
	}
}
