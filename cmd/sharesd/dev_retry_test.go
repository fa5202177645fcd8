package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRetry checks the wait of dev's demo announcement: it calls its
// condition until it holds, and gives up as soon as the context ends
// instead of sleeping on.
func TestRetry(t *testing.T) {
	t.Parallel()
	t.Run("calls the condition until it holds", func(t *testing.T) {
		calls := 0
		ok := retry(context.Background(), time.Millisecond, func() error {
			if calls++; calls < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		if !ok || calls != 3 {
			t.Fatalf("retry = %v after %d calls, want true after 3", ok, calls)
		}
	})
	t.Run("gives up when the context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		ok := retry(ctx, time.Hour, func() error {
			calls++
			cancel()
			return errors.New("never")
		})
		if ok || calls != 1 {
			t.Fatalf("retry = %v after %d calls, want false after 1 (and no hour's wait)", ok, calls)
		}
	})
}
