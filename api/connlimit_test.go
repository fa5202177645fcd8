package api_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
)

// metricValue is the value of a gauge or counter.
func metricValue(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

// countingListener counts the connections it has accepted and not yet
// seen closed, and the most ever open at once: the server's descriptors.
type countingListener struct {
	net.Listener
	open, peak atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.open.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// TestConnLimit fills a server limited to 64 connections with idle
// keep-alive connections and connections that send nothing, four times
// over, and checks that real requests are still answered at once, that the
// server never holds more than 64 connections, and that it holds none
// once the clients have gone.
func TestConnLimit(t *testing.T) {
	t.Parallel()
	const limit = 64
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	srv := &http.Server{
		Handler:           w.handler(nil, api.Config{}),
		ReadHeaderTimeout: time.Minute, // so that only the limit closes the silent ones
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn),
	}
	metrics := api.NewMetrics(prometheus.NewRegistry())
	limited := api.LimitConns(srv, counted, limit, metrics)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(limited) }()
	addr := ln.Addr().String()

	var hostile []net.Conn
	defer func() {
		for _, c := range hostile {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range 4 * limit {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		hostile = append(hostile, c)
		if i%2 == 0 { // a keep-alive connection, idle after one request
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				continue // closed to make room before it was served: a client retries
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}

	t.Logf("%d hostile connections opened in %v", len(hostile), time.Since(start).Round(time.Millisecond))

	// Real requests, on new connections, one after another and at once.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	check := func() error {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+sharesPath(renderA), nil)
		req.Header.Set("Authorization", "Bearer "+liveKey)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		if d := time.Since(start); d > time.Second {
			return fmt.Errorf("answered after %v", d)
		}
		return nil
	}
	for i := range 20 {
		if err := check(); err != nil {
			t.Fatalf("request %d with %d hostile connections open: %v", i, len(hostile), err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*limit)
	for range 2 * limit {
		wg.Go(func() { errs <- check() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent request: %v", err)
		}
	}
	if peak := counted.peak.Load(); peak > limit {
		t.Errorf("the server held %d connections at once, want at most %d", peak, limit)
	}
	if limited.Evicted() == 0 {
		t.Errorf("no connection was closed to make room")
	}
	t.Logf("peak %d connections, %d closed to make room", counted.peak.Load(), limited.Evicted())
	if got, want := metricValue(t, metrics.ConnsEvicted), float64(limited.Evicted()); got != want {
		t.Errorf("sharesd_http_connections_evicted_total = %v, want %v", got, want)
	}

	// Once the clients are gone, so are the server's connections.
	for _, c := range hostile {
		c.Close()
	}
	hostile = nil
	polltest.WaitFor(t, 5*time.Second, func() error {
		if n, m, g := counted.open.Load(), limited.Open(), metricValue(t, metrics.ConnsOpen); n != 0 || m != 0 || g != 0 {
			return fmt.Errorf("%d connections still open (limiter counts %d, sharesd_http_connections_open %v)", n, m, g)
		}
		return nil
	})
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve returned %v", err)
	}
}
