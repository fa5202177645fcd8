package readmodel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/polltest"
)

// TestPartitionLeases checks that each partition lease goes to one token
// at a time, that renewing lists the holder's leases and every member,
// that a position is saved only by the holder of its partition's lease
// (fenced, nothing changed otherwise), and that leaving frees the leases
// and the membership, also after Redis lost its script cache.
func TestPartitionLeases(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	f.store.SetPartitions(4)
	ctx := context.Background()
	if got, err := f.store.ClaimLeases(ctx, "a", time.Minute, 2); err != nil || !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("a claims 2: %v, %v; want [0 1]", got, err)
	}
	if got, err := f.store.ClaimLeases(ctx, "b", time.Minute, 4); err != nil || !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("b claims 4: %v, %v; want the free [2 3]", got, err)
	}
	if got, err := f.store.ClaimLeases(ctx, "c", time.Minute, 1); err != nil || len(got) != 0 {
		t.Fatalf("c claims 1: %v, %v; want none free", got, err)
	}
	if _, err := f.store.RenewLeases(ctx, "b", time.Minute); err != nil {
		t.Fatal(err)
	}
	l, err := f.store.RenewLeases(ctx, "a", time.Minute)
	if err != nil || !slices.Equal(l.Owned, []int{0, 1}) || !slices.Equal(l.Members, []string{"a", "b"}) {
		t.Fatalf("renew a: %+v, %v; want [0 1] among members a, b", l, err)
	}

	if err := f.store.SaveCheckpoint(ctx, f.gen, Checkpoint{Seq: 10, Parts: []int{0, 1}, Token: "a"}); err != nil {
		t.Fatalf("a saves its partitions: %v", err)
	}
	err = f.store.SaveCheckpoint(ctx, f.gen, Checkpoint{Seq: 20, Parts: []int{1, 2}, Token: "a"})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("a saves b's partition 2: %v, want ErrFenced", err)
	}
	ctl, err := f.store.ReadControl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := []uint64{ctl.PosOf(f.gen, 0), ctl.PosOf(f.gen, 1), ctl.PosOf(f.gen, 2)}; !slices.Equal(got, []uint64{10, 10, 0}) {
		t.Fatalf("positions %v after a fenced checkpoint, want [10 10 0]: nothing of it saved", got)
	}
	if held, err := f.store.LeasesHeld(ctx); err != nil || held != 4 {
		t.Fatalf("LeasesHeld = %d, %v; want 4", held, err)
	}

	if err := f.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.store.ReleaseLeases(ctx, "b", []int{0}, false); err != nil {
		t.Fatal(err)
	}
	if err := f.store.ReleaseLeases(ctx, "a", nil, true); err != nil {
		t.Fatal(err)
	}
	owners, err := f.store.LeaseOwners(ctx)
	if err != nil || !slices.Equal(owners, []string{"", "", "b", "b"}) {
		t.Fatalf("owners after a left (and b released a lease it did not hold) = %q, %v", owners, err)
	}
	if l, err := f.store.RenewLeases(ctx, "b", time.Minute); err != nil || !slices.Equal(l.Members, []string{"b"}) {
		t.Fatalf("members after a left: %+v, %v; want b alone", l, err)
	}
}

// TestFollowLeases: a projector that gives up leases or joins tells the
// followers, on a single node and on a cluster (sharded pub/sub).
func TestFollowLeases(t *testing.T) {
	t.Parallel()
	onNodeAndCluster(t, func(t *testing.T, f *fixture) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		told := make(chan struct{}, 10)
		go f.store.FollowLeases(ctx, func() { told <- struct{}{} })
		heard := func(what string, do func() error) {
			t.Helper()
			// Until the subscription is in place an announcement is
			// lost, so announce again until one is heard.
			polltest.WaitFor(t, 10*time.Second, func() error {
				if err := do(); err != nil {
					return polltest.Stop(err)
				}
				select {
				case <-told:
					return nil
				case <-time.After(50 * time.Millisecond):
					return fmt.Errorf("%s: no announcement heard", what)
				}
			})
		}
		heard("join", func() error { return f.store.AnnounceLeases(ctx) })
		if _, err := f.store.ClaimLeases(ctx, "p1", time.Minute, 1); err != nil {
			t.Fatal(err)
		}
		heard("release", func() error { return f.store.ReleaseLeases(ctx, "p1", nil, true) })
	})
}
