package polltest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/polltest"
)

func TestPoll(t *testing.T) {
	t.Parallel()
	t.Run("returns once the condition holds", func(t *testing.T) {
		calls := 0
		err := polltest.Poll(5*time.Second, func() error {
			if calls++; calls < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
		}
	})
	t.Run("returns the last error after the timeout", func(t *testing.T) {
		calls := 0
		start := time.Now()
		err := polltest.Poll(50*time.Millisecond, func() error {
			calls++
			return fmt.Errorf("try %d", calls)
		})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("try %d", calls)) {
			t.Fatalf("Poll = %v, want the last error (try %d)", err, calls)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("Poll gave up after %v, want at least the 50ms timeout", d)
		}
	})
	t.Run("Stop ends the wait at once", func(t *testing.T) {
		gone := errors.New("gone")
		calls := 0
		err := polltest.Poll(time.Minute, func() error {
			calls++
			return polltest.Stop(gone)
		})
		if err != gone || calls != 1 {
			t.Fatalf("Poll = %v after %d calls, want %v after 1", err, calls, gone)
		}
	})
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	ready := time.Now().Add(30 * time.Millisecond)
	polltest.WaitFor(t, 5*time.Second, func() error {
		if time.Now().Before(ready) {
			return errors.New("not yet")
		}
		return nil
	})
}

func TestBuffer(t *testing.T) {
	t.Parallel()
	var b polltest.Buffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				fmt.Fprintf(&b, "writer %d line %d\n", i, j)
			}
		}()
	}
	polltest.WaitFor(t, 5*time.Second, func() error { // read while they write
		if n := len(b.Lines()); n < 200 {
			return fmt.Errorf("%d lines", n)
		}
		return nil
	})
	wg.Wait()
	if got := b.Tail(2); strings.Count(got, "\n") != 1 {
		t.Fatalf("Tail(2) = %q, want two lines", got)
	}
}
