package projector_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// owners waits until every partition has an owner and the owners are
// exactly want distinct projectors, holding a fair share each (the counts
// differ by at most one), and returns the owner of each partition.
func (e *env) waitOwners(t testing.TB, want int) []string {
	t.Helper()
	var owners []string
	polltest.WaitFor(t, 20*time.Second, func() error {
		var err error
		if owners, err = e.store.LeaseOwners(context.Background()); err != nil {
			return err
		}
		count := map[string]int{}
		for q, o := range owners {
			if o == "" {
				return fmt.Errorf("partition %d has no owner: %q", q, owners)
			}
			count[o]++
		}
		lo, hi := len(owners), 0
		for _, n := range count {
			lo, hi = min(lo, n), max(hi, n)
		}
		if len(count) != want || hi-lo > 1 {
			return fmt.Errorf("owners %q: want %d projectors with a fair share each", owners, want)
		}
		return nil
	})
	return owners
}

// TestPartitionedProjectors runs several projectors on one stream and one
// Redis: they share the partitions fairly, a projector that stops hands
// its partitions over, one that dies (its leases left to expire) has them
// taken over within the lease, one that joins takes its share, and at the
// end every view counts once and every partition's position is the
// stream's end.
func TestPartitionedProjectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const parts = 6
	e.store.SetPartitions(parts)
	ctx := context.Background()
	cfg := projector.Config{BatchSize: 32, LeaseTTL: time.Second}
	a, b := e.startWith(t, cfg), e.startWith(t, cfg)
	e.waitOwners(t, 2)

	project := eventstest.NewUUID()
	evs := workload(project, 24, 3, 30)
	m := modelOf(project, evs)
	third := len(evs) / 3
	e.publishAsync(t, evs[:third])

	// One that dies: it holds two partitions' leases and a membership and
	// never renews them.
	dead := "dead-projector"
	if _, err := e.store.RenewLeases(ctx, dead, time.Second); err != nil {
		t.Fatal(err)
	}
	var mine []int
	for q, o := range e.waitOwners(t, 2) {
		if o == a.p.Token() && len(mine) < 2 {
			mine = append(mine, q)
		}
	}
	if err := e.store.ReleaseLeases(ctx, a.p.Token(), mine, false); err != nil {
		t.Fatal(err)
	}
	if got, err := e.store.ClaimLeases(ctx, dead, time.Second, 2); err != nil || !slices.Equal(got, mine) {
		t.Fatalf("claim for the dead one: %v, %v; want %v", got, err, mine)
	}
	e.publishAsync(t, evs[third:2*third])
	owners := e.waitOwners(t, 2) // the dead one's leases expired and were taken over
	if slices.Contains(owners, dead) {
		t.Fatalf("the dead projector still owns a partition: %q", owners)
	}

	c := e.startWith(t, cfg) // one that joins
	e.waitOwners(t, 3)
	e.publishAsync(t, evs[2*third:])
	if d := b.stop(t); d > 5*time.Second { // one that stops hands over at once
		t.Fatalf("stop took %v", d)
	}
	owners = e.waitOwners(t, 2)
	if slices.Contains(owners, b.p.Token()) {
		t.Fatalf("a stopped projector still owns a partition: %q", owners)
	}

	last := e.lastSeq(t)
	polltest.WaitFor(t, 30*time.Second, func() error {
		ctl, err := e.store.ReadControl(ctx)
		if err != nil {
			return err
		}
		for q := range parts {
			if got := ctl.PosOf(ctl.Active, q); got < last {
				return fmt.Errorf("partition %d at %d, want %d", q, got, last)
			}
		}
		return nil
	})
	m.check(t, e)
	for _, r := range []*running{a, c} {
		if st := r.p.Status(); len(st.Parts) == 0 || !st.Leader {
			t.Errorf("projector %s holds %v", r.p.Token(), st.Parts)
		}
	}
}

// TestPartitionsMustAgree checks that a store started with another number
// of partitions than the deployment's is refused, saying both.
func TestPartitionsMustAgree(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.store.SetPartitions(8)
	if err := e.store.AgreePartitions(ctx); err != nil {
		t.Fatalf("first agreement: %v", err)
	}
	other := readmodel.New(e.rdb, time.Hour)
	other.SetPartitions(16)
	err := other.AgreePartitions(ctx)
	if err == nil || !errors.Is(err, readmodel.ErrPartitionsDiffer) || !strings.Contains(err.Error(), "uses 8") || !strings.Contains(err.Error(), "with 16") {
		t.Fatalf("AgreePartitions with 16 on a deployment of 8 = %v; want ErrPartitionsDiffer naming both", err)
	}
}

// TestPartitionOfRender checks that every event of a render falls in the
// partition the API computes from the render id.
func TestPartitionOfRender(t *testing.T) {
	t.Parallel()
	project, render := eventstest.NewUUID(), eventstest.NewUUID()
	want := events.PartitionOf(render, 8)
	for _, ev := range []eventstest.Event{
		eventstest.RenderCreated(project, render),
		eventstest.ShareCreated(project, render, "s", "2026-06-05T10:00:00Z"),
		eventstest.ShareViewed(project, render, "s"),
	} {
		if got := events.Partition(ev.Subject(), 8); got != want {
			t.Errorf("%s: partition %d, want %d", ev.Subject(), got, want)
		}
	}
}

// TestHandoverAtOnce: with leases renewed only every 10s (LeaseTTL 30s),
// partitions still move at once, because a projector that joins or stops
// says so on the leases channel instead of leaving the others to find out
// at their next renewal: one that joins gets its share, and one that stops
// hands its partitions over, each within a few seconds.
func TestHandoverAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const parts = 4
	e.store.SetPartitions(parts)
	const bound = 5 * time.Second // a renewal is 10s away
	cfg := projector.Config{LeaseTTL: 30 * time.Second}
	project := eventstest.NewUUID()
	a := e.startWith(t, cfg)
	e.waitApplied(t, e.publish(t, eventstest.RenderCreated(project, eventstest.NewUUID())), a)
	e.waitOwners(t, 1)

	start := time.Now()
	b := e.startWith(t, cfg)
	owners := e.waitOwners(t, 2)
	if d := time.Since(start); d > bound {
		t.Fatalf("a joining projector got its share after %v, want within %v", d, bound)
	}

	var render string // in a partition b holds
	for render == "" || owners[events.PartitionOf(render, parts)] != b.p.Token() {
		render = eventstest.NewUUID()
	}
	b.stop(t)
	start = time.Now()
	if owners := e.waitOwners(t, 1); owners[0] != a.p.Token() {
		t.Fatalf("owners %q, want all %s", owners, a.p.Token())
	}
	if d := time.Since(start); d > bound {
		t.Fatalf("a stopped projector's partitions were taken over after %v, want within %v", d, bound)
	}
	e.waitApplied(t, e.publish(t, eventstest.RenderCreated(project, render)), a)
}
