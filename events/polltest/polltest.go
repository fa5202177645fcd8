// Package polltest waits for conditions in tests, in the style of
// nats.go's checkFor, and captures output that other goroutines write
// while a test reads it. Tests wait with WaitFor, never with time.Sleep.
package polltest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Interval is how often WaitFor and Poll call their condition.
const Interval = 10 * time.Millisecond

// WaitFor calls f every Interval until it returns nil, and fails the test
// with f's last error once timeout has passed. f runs on the test's
// goroutine, so it may call t.Fatal itself to give up early.
func WaitFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	if err := Poll(timeout, f); err != nil {
		t.Fatal(err)
	}
}

// Poll is WaitFor for code without a *testing.T (a server starter): it
// calls f every Interval until f returns nil, and returns nil, or returns
// f's last error once timeout has passed. An error made with Stop ends the
// wait at once; Poll returns the error Stop was given.
func Poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		err := f()
		var stop *stopError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &stop):
			return stop.err
		case time.Now().After(deadline):
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		<-tick.C
	}
}

// Stop wraps err so that Poll returns it at once instead of calling its
// condition again: the condition can no longer come true.
func Stop(err error) error { return &stopError{err} }

type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

// A Buffer is a bytes.Buffer that one or more writers (a child process's
// output copiers, a server's logger) and the test can use at the same
// time. Its zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns everything written so far, one element a line.
func (b *Buffer) Lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Tail returns the last n lines written, for a failure message.
func (b *Buffer) Tail(n int) string { return Tail(b.String(), n) }

// Tail returns the last n lines of s (a log), for a failure message.
func Tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
