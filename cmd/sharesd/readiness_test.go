package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// readyBody is /readyz's answer.
type readyBody struct{ Status, Reason, Message string }

func readyz(p *sharesdProc) (int, readyBody, string, error) {
	r, err := p.get("/readyz", nil)
	if err != nil {
		return 0, readyBody{}, "", err
	}
	var b readyBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		return r.status, b, string(r.body), fmt.Errorf("/readyz body %s: %v", r.body, err)
	}
	return r.status, b, string(r.body), nil
}

// TestReadyzProjectorStalled stalls the real projector: Redis keeps
// answering reads and PING but refuses every write (maxmemory below what
// it uses, noeviction), and events are published. /readyz must turn 503
// projector_stalled within READY_STALL (plus the projector's retry pause),
// without telling the Redis error, and 200 again once writes work.
func TestReadyzProjectorStalled(t *testing.T) {
	t.Parallel()
	ns := natstest.StartServer(t, "")
	rs := redistest.Start(t)
	const stall = 2 * time.Second
	p := startProcess(t, map[string]string{"NATS_URL": ns.ClientURL(), "REDIS_URL": rs.URL, "READY_STALL": stall.String()}, "serve")
	polltest.WaitFor(t, 10*time.Second, func() error {
		if status, b, _, err := readyz(p); err != nil || status != http.StatusOK {
			return fmt.Errorf("/readyz = %d %+v, %v", status, b, err)
		}
		return nil
	})

	_, js := natstest.Connect(t, ns)
	rdb := rs.Client(t)
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 5 {
		ev := eventstest.RenderCreated(demoProject, eventstest.UUID(i)).WithID(fmt.Sprintf("stall-%d", i))
		last = natstest.Publish(t, js, ev.Subject(), ev.Body(), "")
	}
	published := time.Now()

	// Ready for the bound, then stalled.
	var body string
	polltest.WaitFor(t, stall+10*time.Second, func() error {
		status, b, raw, err := readyz(p)
		if err != nil {
			return err
		}
		if status == http.StatusOK {
			return fmt.Errorf("/readyz still 200 after %v", time.Since(published).Round(time.Millisecond))
		}
		if status != http.StatusServiceUnavailable || b.Reason != "projector_stalled" {
			return fmt.Errorf("/readyz = %d %s, want 503 projector_stalled", status, raw)
		}
		body = raw
		return nil
	})
	took := time.Since(published)
	t.Logf("503 projector_stalled %v after the events were published (READY_STALL %v): %s", took.Round(time.Millisecond), stall, body)
	if took < stall-time.Second { // the head was last seen at most an idle second before
		t.Errorf("stalled after %v, before READY_STALL %v had passed", took, stall)
	}
	for _, leak := range []string{"OOM", "maxmemory", "127.0.0.1", rs.Addr, "dial"} {
		if strings.Contains(body, leak) {
			t.Errorf("/readyz body %s contains %q", body, leak)
		}
	}
	if !strings.Contains(p.stderr.String(), "OOM") {
		t.Errorf("the cause (Redis refusing writes) was not logged")
	}

	// Writes work again: the projector catches up and /readyz is 200.
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	polltest.WaitFor(t, 20*time.Second, func() error {
		if status, _, raw, err := readyz(p); err != nil || status != http.StatusOK {
			return fmt.Errorf("/readyz = %d %s, %v", status, raw, err)
		}
		return nil
	})
	polltest.WaitFor(t, 10*time.Second, func() error {
		ctl, err := testStore(rdb, time.Hour).ReadControl(ctx)
		if pos := ctl.Pos[ctl.Active]; err != nil || pos < last {
			return fmt.Errorf("position %d (%v), want the published events (up to %d) applied", pos, err, last)
		}
		return nil
	})
}

// TestReadyzRedisUnreachable: with Redis down, /readyz says
// redis_unavailable without the address or the dial error, in every
// mode; the log has the cause.
func TestReadyzRedisUnreachable(t *testing.T) {
	t.Parallel()
	ns := natstest.StartServer(t, "")
	down := "redis://" + freeAddr(t) // nothing listens there
	for _, mode := range []string{"serve", "api", "projector"} {
		t.Run(mode, func(t *testing.T) {
			p := startProcess(t, map[string]string{"NATS_URL": ns.ClientURL(), "REDIS_URL": down}, mode)
			status, b, raw, err := readyz(p)
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusServiceUnavailable || b.Status != "unavailable" || b.Reason != "redis_unavailable" || b.Message == "" {
				t.Errorf("/readyz = %d %s, want 503 unavailable redis_unavailable with a message", status, raw)
			}
			host := strings.TrimPrefix(down, "redis://")
			_, port, _ := strings.Cut(host, ":")
			for _, leak := range []string{"127.0.0.1", port, "dial", "refused", "tcp"} {
				if strings.Contains(raw, leak) {
					t.Errorf("/readyz body %s contains %q", raw, leak)
				}
			}
			polltest.WaitFor(t, 5*time.Second, func() error {
				if !strings.Contains(p.stderr.String(), `"msg":"not ready"`) || !strings.Contains(p.stderr.String(), host) {
					return fmt.Errorf("the cause is not logged:\n%s", p.stderr)
				}
				return nil
			})
		})
	}
}

// TestServeConnLimit runs `sharesd api` with MAX_CONNS=32 and opens four
// times as many idle keep-alive and silent connections: requests are still
// answered at once and the server reports at most 32 connections open.
func TestServeConnLimit(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	const limit = 32
	p := startProcess(t, map[string]string{"REDIS_URL": rs.URL, "MAX_CONNS": strconv.Itoa(limit)}, "api")
	var hostile []net.Conn
	defer func() {
		for _, c := range hostile {
			c.Close()
		}
	}()
	for i := range 4 * limit {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		hostile = append(hostile, c)
		if i%2 == 0 {
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		}
	}
	for i := range 10 {
		start := time.Now()
		r := p.mustGet(t, "/metrics", nil)
		// The first waits behind the flood in the kernel's accept queue
		// (each silent connection gets api.NewConnGrace to speak).
		if d := time.Since(start); r.status != http.StatusOK || d > time.Second && i > 0 || d > 5*time.Second {
			t.Fatalf("GET /metrics %d = %d after %v, want 200 at once", i, r.status, d)
		}
		var open float64
		for _, line := range strings.Split(string(r.body), "\n") {
			if v, ok := strings.CutPrefix(line, "sharesd_http_connections_open "); ok {
				open, _ = strconv.ParseFloat(v, 64)
			}
		}
		if open < 1 || open > limit {
			t.Errorf("sharesd_http_connections_open = %v, want 1 to %d", open, limit)
		}
	}
	if got := p.stderr.String(); !strings.Contains(got, `"max_conns":32`) {
		t.Errorf("the limit is not logged at start")
	}
}

func TestDefaultMaxConns(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		nofile uint64
		procs  int
		want   int
	}{
		{20000, 2, 20000 - 168}, // this machine's limit
		{1048576, 8, 1048576 - 288},
		{1024, 2, 1024 - 168},
		{256, 8, 128}, // too small for the reserve: half
		{3, 1, 2},
	} {
		if _, got := defaultMaxConns(c.nofile, c.procs); got != c.want {
			t.Errorf("defaultMaxConns(%d, %d) = %d, want %d", c.nofile, c.procs, got, c.want)
		}
	}
}
