package readmodel

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// newClusterFixture is newFixture on a Redis Cluster of three masters with
// a replica each.
// onNodeAndCluster runs test in parallel subtests, on a single Redis node
// and on a Redis Cluster.
func onNodeAndCluster(t *testing.T, test func(t *testing.T, f *fixture)) {
	for _, tt := range []struct {
		name    string
		fixture func(t *testing.T) *fixture
	}{
		{"single node", func(t *testing.T) *fixture { return newFixture(t, 0) }},
		{"cluster", func(t *testing.T) *fixture { f, _ := newClusterFixture(t); return f }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			test(t, tt.fixture(t))
		})
	}
}

func newClusterFixture(t testing.TB) (*fixture, *redistest.Cluster) {
	t.Helper()
	c := redistest.StartCluster(t)
	store := New(c.Client(t), time.Hour)
	ctx := context.Background()
	if err := store.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	gen := NewGen(time.Now())
	if ok, err := store.Activate(ctx, gen, ""); err != nil || !ok {
		t.Fatalf("activate: ok=%v err=%v", ok, err)
	}
	return &fixture{t: t, store: store, gen: gen}, c
}

// spread returns n render ids whose keys lie on n different masters.
func spread(t testing.TB, c *redistest.Cluster, gen string, n int) []string {
	t.Helper()
	seen := map[int]bool{}
	var ids []string
	for i := 0; len(ids) < n && i < 1000; i++ {
		id := eventstest.UUID(i)
		if m := c.MasterOf(renderKeysOf(gen, id)[kRender]); !seen[m] {
			seen[m] = true
			ids = append(ids, id)
		}
	}
	if len(ids) < n {
		t.Fatalf("found renders on %d masters, want %d", len(ids), n)
	}
	return ids
}

// TestCluster: on a Redis Cluster the read model works as on one node with
// renders on every master: scripts, reads, announcements of the applied
// position (sharded pub/sub), the generations found and dropped on every
// master, and maxmemory-policy read from the masters.
func TestCluster(t *testing.T) {
	t.Parallel()
	f, c := newClusterFixture(t)
	ctx := context.Background()
	renders := spread(t, c, f.gen, 3)
	positions := f.follow()
	for _, r := range renders {
		ops := []Op{
			f.op(eventstest.ShareCreated(projectA, r, "s1", "2026-06-01T10:00:00Z"), time.Time{}),
			f.op(eventstest.ShareViewed(projectA, r, "s1"), time.Time{}),
			f.op(eventstest.ShareViewed(projectA, r, "s1"), time.Time{}),
			f.op(eventstest.APIKeyCreated(projectA, eventstest.NewUUID(), "ck_live_"+r, "live"), time.Time{}),
			f.op(eventstest.ProjectUpdated(projectA, nil), time.Time{}),
		}
		if _, _, err := f.store.Apply(ctx, f.gen, ops, 0, true); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	for _, r := range renders {
		list, _ := f.mustList(projectA, r)
		if len(list) != 1 || list[0].ClickCount != 2 {
			t.Fatalf("render %s: list = %v, want s1 with 2 views", r, summary(list))
		}
	}
	polltest.WaitFor(t, 5*time.Second, func() error {
		select {
		case a := <-positions:
			if a.Announced && a.Seq == f.seq {
				return nil
			}
			return fmt.Errorf("position %+v, want %d announced", a, f.seq)
		default:
			return errors.New("no position announced")
		}
	})

	gens, err := f.store.Generations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 3 renders × (render, recs, dedupe) + project hash and
	// seen set + key index, registrations and 3 key records.
	if got, want := gens[f.gen], int64(3*3+2+2+3); got != want {
		t.Fatalf("keys of generation %s found = %d, want %d (every master scanned)", f.gen, got, want)
	}
	n, err := f.store.DropGen(ctx, f.gen)
	if err != nil {
		t.Fatal(err)
	}
	if n != gens[f.gen] {
		t.Fatalf("dropped %d keys, want %d", n, gens[f.gen])
	}
	if gens, err := f.store.Generations(ctx); err != nil || gens[f.gen] != 0 {
		t.Fatalf("after DropGen: generations = %v, %v", gens, err)
	}
	if p, err := f.store.MaxmemoryPolicy(ctx); err != nil || p != "noeviction" {
		t.Fatalf("maxmemory-policy = %q, %v; want noeviction", p, err)
	}
}

// TestClusterApplyWaitsForReplica: Apply on a cluster returns only once a
// replica of the master it wrote to has the writes, and fails with
// ErrNotReplicated while that replica is stopped, also when the writes were
// made by an earlier attempt (the fence write). A master whose replica took
// over from it and that has no replica left is not waited for, and after a
// failover the scripts are there.
func TestClusterApplyWaitsForReplica(t *testing.T) {
	t.Parallel()
	f, c := newClusterFixture(t)
	ctx := context.Background()
	render := spread(t, c, f.gen, 1)[0]
	master := c.MasterOf(renderKeysOf(f.gen, render)[kRender])
	replica := c.ReplicaOf(master)

	ops := []Op{
		f.op(eventstest.ShareCreated(projectA, render, "s1", "2026-06-01T10:00:00Z"), time.Time{}),
		f.op(eventstest.ShareViewed(projectA, render, "s1"), time.Time{}),
	}
	c.SetNodeTimeout(10 * time.Second) // the stopped replica is not failed meanwhile
	c.Pause(replica)
	start := time.Now()
	_, _, err := f.store.Apply(ctx, f.gen, ops, 0, false)
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("apply with the replica stopped: err = %v, want ErrNotReplicated", err)
	}
	if d := time.Since(start); d < ReplicaWait {
		t.Fatalf("apply failed after %v, want at least ReplicaWait (%v)", d, ReplicaWait)
	}
	// Applied again: every op is stale, nothing is written, yet the earlier
	// writes are still unacknowledged.
	if _, _, err := f.store.Apply(ctx, f.gen, ops, 0, false); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("apply again with the replica stopped: err = %v, want ErrNotReplicated", err)
	}
	c.Resume(replica)
	c.SetNodeTimeout(time.Second)
	res, _, err := f.store.Apply(ctx, f.gen, ops, 0, false)
	if err != nil {
		t.Fatalf("apply with the replica back: %v", err)
	}
	if res[0].Outcome != Stale || res[1].Outcome != Stale {
		t.Fatalf("outcomes = %v, want stale (applied by the first attempt)", res)
	}

	// The acknowledged writes survive the master's death.
	if got := c.KillMaster(master); got != replica {
		t.Fatalf("node %d took over, want %d", got, replica)
	}
	// The client follows the failover after its first error.
	polltest.WaitFor(t, 5*time.Second, func() error {
		list, _, err := f.list(projectA, render)
		if err != nil {
			return err
		}
		if len(list) != 1 || list[0].ClickCount != 1 {
			t.Fatalf("after the failover: list = %v, want s1 with 1 view", summary(list))
		}
		return nil
	})
	// The new master has no replica: Apply goes on without waiting.
	more := []Op{f.op(eventstest.ShareViewed(projectA, render, "s1"), time.Time{})}
	if _, _, err := f.store.Apply(ctx, f.gen, more, 0, false); err != nil {
		t.Fatalf("apply on a master without replica: %v", err)
	}
	c.Restart(master) // back as the replica of the new master
	more = []Op{f.op(eventstest.ShareViewed(projectA, render, "s1"), time.Time{})}
	if _, _, err := f.store.Apply(ctx, f.gen, more, 0, false); err != nil {
		t.Fatalf("apply with the old master as replica: %v", err)
	}
	if list, _ := f.mustList(projectA, render); list[0].ClickCount != 3 {
		t.Fatalf("views = %d, want 3", list[0].ClickCount)
	}
}
