// Package redistest runs a real redis-server child process for tests, as
// go-redis's old test harness did, and for `sharesd dev` and the benchmark
// (Launch). Each server listens on a free loopback port, never on 6379,
// and keeps nothing on disk; a test's is killed when the test ends.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events/polltest"
)

// A Server is a redis-server child process.
type Server struct {
	Addr string // host:port, for redis.Options.Addr
	URL  string // redis://host:port, for redis.ParseURL

	bin    string
	port   int
	dir    string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}    // closed once cmd has been waited for
	out    *polltest.Buffer // stdout and stderr of every run, shown on failure
}

// ErrNotFound is returned by Launch when redis-server is not on PATH. Its
// message says how to install it.
var ErrNotFound = errors.New("redis-server not found on PATH: install it: " +
	"apt-get install -y redis-server (or run make deps)")

// Launch runs redis-server on a free loopback port (never 6379) with
// persistence off and noeviction, its files under dir (created if
// missing), adding args to its command line (later arguments win). It
// returns once the server answers PING; the caller stops it with Stop.
// Start is Launch for a test. `sharesd dev` and the benchmark use Launch.
func Launch(dir string, args ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotFound
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	s := &Server{bin: bin, dir: dir, args: args, out: new(polltest.Buffer)}
	// Another process may take the free port before redis-server binds it,
	// so try a few ports.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if err = s.launch(port); err == nil {
			return s, nil
		}
		if !errors.Is(err, errExited) {
			return nil, fmt.Errorf("%w\nredis-server output:\n%s", err, s.out)
		}
	}
	return nil, fmt.Errorf("redis-server did not start after 5 ports\nredis-server output:\n%s", s.out)
}

// Start runs redis-server with Launch in t.TempDir() and kills it when the
// test ends, showing its output if the test failed. A missing
// redis-server fails the test with the fix.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	s, err := Launch(t.TempDir(), extraArgs...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("redistest: redis-server on %s output:\n%s", s.Addr, s.out)
		}
	})
	return s
}

// Stop kills the server, continuing it first if it was paused, and waits
// for it to exit.
func (s *Server) Stop() { s.kill() }

// Client returns a client of s with default options, closed when the test
// ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Restart kills s with SIGKILL and starts it again on the same port with
// no data, as a Redis without persistence comes back after a crash.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.kill()
	if err := s.launch(s.port); err != nil {
		t.Fatalf("redistest: restart on port %d: %v\nredis-server output:\n%s", s.port, err, s.out)
	}
}

// Pause stops s with SIGSTOP: connections are still accepted by the
// kernel, but no command is answered until Resume.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("redistest: pause: %v", err)
	}
}

// Resume continues s with SIGCONT after Pause.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("redistest: resume: %v", err)
	}
}

var errExited = errors.New("redis-server exited")

// launch starts redis-server on port and waits until it answers PING. It
// returns an error wrapping errExited if the process died meanwhile, for
// instance because the port was taken.
func (s *Server) launch(port int) error {
	s.port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.URL = "redis://" + s.Addr

	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--maxmemory-policy", "noeviction",
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	c := redis.NewClient(&redis.Options{
		Addr:        s.Addr,
		DialTimeout: time.Second,
		ReadTimeout: time.Second,
		MaxRetries:  -1,
	})
	defer c.Close()
	err := polltest.Poll(10*time.Second, func() error {
		select {
		case <-exited:
			return polltest.Stop(fmt.Errorf("%w on port %d: %v", errExited, port, cmd.ProcessState))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	})
	if err != nil && !errors.Is(err, errExited) {
		s.kill()
	}
	return err
}

// kill continues the process, in case it was paused, kills it and waits
// for it to exit.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if err := ln.Close(); err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		if port != 6379 {
			return port, nil
		}
	}
}
