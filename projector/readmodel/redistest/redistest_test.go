package redistest_test

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

func TestStart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := t.Context()

	if _, port, _ := net.SplitHostPort(s.Addr); port == "6379" {
		t.Fatalf("addr = %s, want a port other than 6379", s.Addr)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("get = %q, %v; want %q, nil", got, err, "v")
	}
	got, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		t.Fatalf("config get: %v", err)
	}
	if got, want := got["maxmemory-policy"], "noeviction"; got != want {
		t.Fatalf("maxmemory-policy = %q, want %q", got, want)
	}

	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		t.Fatalf("parse url %q: %v", s.URL, err)
	}
	if got, want := opt.Addr, s.Addr; got != want {
		t.Fatalf("url addr = %q, want %q", got, want)
	}
}

func TestStartExtraArgs(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, "--databases", "2")
	c := s.Client(t)

	got, err := c.ConfigGet(t.Context(), "databases").Result()
	if err != nil {
		t.Fatalf("config get: %v", err)
	}
	if got, want := got["databases"], "2"; got != want {
		t.Fatalf("databases = %q, want %q", got, want)
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	addr := s.Addr

	s.Restart(t)

	if got, want := s.Addr, addr; got != want {
		t.Fatalf("addr after restart = %s, want %s", got, want)
	}
	// The client's pooled connection died with the old process; the next
	// command may fail once before the client dials again.
	waitFor(t, 5*time.Second, func() error { return c.Ping(ctx).Err() })
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("get after restart: err = %v, want redis.Nil", err)
	}
}

func TestPause(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{
		Addr:        s.Addr,
		ReadTimeout: 300 * time.Millisecond,
		MaxRetries:  -1,
	})
	t.Cleanup(func() { _ = c.Close() })
	ctx := t.Context()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}

	s.Pause(t)
	start := time.Now()
	err := c.Ping(ctx).Err()
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("ping while paused: err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ping while paused took %v, want about 300ms", d)
	}

	s.Resume(t)
	waitFor(t, 5*time.Second, func() error { return c.Ping(ctx).Err() })
}

// TestPauseCleanup checks that a server still paused when its test ends
// is killed, not left stopped.
func TestPauseCleanup(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	s.Pause(t)
}

// waitFor calls f every 25ms until it returns nil, and fails the test with
// f's last error after timeout.
func waitFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("after %v: %w", timeout, err))
		}
		time.Sleep(25 * time.Millisecond)
	}
}
