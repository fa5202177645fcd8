package redistest_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events/polltest"
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
	polltest.WaitFor(t, 5*time.Second, func() error { return c.Ping(ctx).Err() })
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
	polltest.WaitFor(t, 5*time.Second, func() error { return c.Ping(ctx).Err() })
}

// TestPauseCleanup checks that a server still paused when its test ends
// is killed, not left stopped.
func TestPauseCleanup(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	s.Pause(t)
}

// TestLaunch starts a server as `sharesd dev` and the benchmark do, in a
// directory that does not exist yet and with no test to clean up after
// it: Stop kills it.
func TestLaunch(t *testing.T) {
	t.Parallel()
	s, err := redistest.Launch(t.TempDir()+"/redis", "--databases", "3")
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	got, err := c.ConfigGet(ctx, "databases").Result()
	if err != nil {
		t.Fatalf("config get: %v", err)
	}
	if got, want := got["databases"], "3"; got != want {
		t.Fatalf("databases = %q, want %q", got, want)
	}
	s.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping after Stop succeeded, want the server gone")
	}
}

// TestLaunchWithoutRedisServer checks that a missing redis-server is
// ErrNotFound, whose message says how to install it.
func TestLaunchWithoutRedisServer(t *testing.T) {
	// Not parallel: it empties PATH for the process.
	t.Setenv("PATH", t.TempDir())
	_, err := redistest.Launch(t.TempDir())
	if !errors.Is(err, redistest.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if want := "install it: apt-get install -y redis-server"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to say %q", err, want)
	}
}
