package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// TestClusterFault runs the real sharesd binary, two projectors and an API,
// on a 3-node JetStream cluster and a Redis Cluster of 3 masters with a
// replica each, while events are published: a Redis master is killed with
// SIGKILL mid-stream (its replica takes over, possibly without the last
// writes), then a projector is killed with SIGKILL (the other takes its
// partitions over once their leases expire), the node that leads the
// stream is shut down, a third projector joins (and takes its share) and
// the node comes back. At the end every render equals the reference model
// of the stream (Verify: no view lost or counted twice), every partition's
// saved position is the stream's head and the two live projectors own
// them all, and meanwhile the API answered only 200 or 503, never a lower
// count than before.
func TestClusterFault(t *testing.T) {
	faultLong(t)
	t.Parallel()
	f, nats, rc, env := startClusterFault(t)
	bin, js := f.bin, f.js

	child := startFaultChild(t, bin, env, "projector", "-http-addr", "127.0.0.1:0")
	doomed := startFaultChild(t, bin, env, "projector", "-http-addr", "127.0.0.1:0")
	waitStreams(t, js, 3) // created by the projector, as STREAM_REPLICAS says
	nats.WaitStreamLeader(events.Stream)
	w := newFaultWork(7, 2, 40, 3, 20_000)
	f.publishSetup(t, w)
	f.waitCaughtUp(t, child, 30*time.Second)
	f.waitOwners(t, 2)
	api := startFaultChild(t, bin, env, "api", "-http-addr", "127.0.0.1:0")
	readers := startFaultReaders(t, api.waitAddr(t), w, w.renders[:10], 3)

	pub := f.publishInBackground(t, w.msgs)
	waitPublished := func(n int) {
		t.Helper()
		polltest.WaitFor(t, 60*time.Second, func() error {
			if err := child.alive(); err != nil {
				t.Fatal(err)
			}
			if got := pub.sent.Load(); got < int64(n) {
				return fmt.Errorf("%d of %d published", got, n)
			}
			return nil
		})
	}
	waitPublished(len(w.msgs) / 4)
	const master = 0 // redis-cli made the first three nodes masters
	start := time.Now()
	replica := rc.KillMaster(master)
	t.Logf("redis node %d killed, node %d took over in %v", master, replica, time.Since(start).Round(time.Millisecond))

	waitPublished(len(w.msgs) * 3 / 8)
	if err := doomed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Log("a projector killed")

	waitPublished(len(w.msgs) / 2)
	leader := nats.StreamLeader(events.Stream)
	if leader < 0 {
		t.Fatal("the stream has no leader")
	}
	nats.Shutdown(leader)
	t.Logf("nats node %d, the stream's leader, shut down", leader)
	waitPublished(len(w.msgs) * 5 / 8)
	joined := startFaultChild(t, bin, env, "projector", "-http-addr", "127.0.0.1:0")
	waitPublished(len(w.msgs) * 3 / 4)
	nats.Restart(leader)

	pub.wait(t)
	f.waitCaughtUp(t, child, 60*time.Second)
	f.waitCaughtUp(t, joined, 60*time.Second)
	f.waitOwners(t, 2) // the live two, the killed one's leases long expired
	readers.stop(t)
	polltest.WaitFor(t, 10*time.Second, func() error { // this test's client follows the failover after an error
		for _, r := range w.renders {
			if _, err := f.store.List(context.Background(), w.renderProject[r], r, nil); err != nil {
				return err
			}
		}
		return nil
	})
	f.checkExact(t, w)
}

// waitOwners waits until every partition has an owner and n projectors
// own them.
func (f *faultEnv) waitOwners(t *testing.T, n int) {
	t.Helper()
	polltest.WaitFor(t, 30*time.Second, func() error {
		owners, err := f.store.LeaseOwners(context.Background())
		if err != nil {
			return err
		}
		if slices.Contains(owners, "") || len(f.leaseOwners(t)) != n {
			return fmt.Errorf("partition owners %q, want %d projectors owning all", owners, n)
		}
		return nil
	})
}

// waitStreams waits until the event and dead-letter streams exist with
// replicas copies.
func waitStreams(t *testing.T, js jetstream.JetStream, replicas int) {
	t.Helper()
	polltest.WaitFor(t, 30*time.Second, func() error {
		for _, name := range []string{events.Stream, events.DeadLetterStream} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s, err := js.Stream(ctx, name)
			cancel()
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("stream %s not created yet", name)
			}
			if err != nil {
				return err
			}
			if got := s.CachedInfo().Config.Replicas; got != replicas {
				t.Fatalf("stream %s has %d replicas, want %d (STREAM_REPLICAS)", name, got, replicas)
			}
		}
		return nil
	})
}

// TestClusterConfig: NATS_URL may list a cluster's servers; REDIS_CLUSTER
// takes go-redis's cluster URL; STREAM_REPLICAS is 1 to 5. Before these,
// a comma-separated NATS_URL was refused and the other two were unknown.
func TestClusterConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		env  map[string]string
		want string // "" for accepted
	}{
		{"nats cluster", map[string]string{"NATS_URL": "nats://10.0.0.1:4222,nats://10.0.0.2:4222, nats://10.0.0.3:4222"}, ""},
		{"redis cluster", map[string]string{"REDIS_CLUSTER": "true", "REDIS_URL": "redis://10.0.0.1:6379?addr=10.0.0.2:6379&addr=10.0.0.3:6379", "STREAM_REPLICAS": "3"}, ""},
		{"bad nats url in a list", map[string]string{"NATS_URL": "nats://10.0.0.1:4222,:::"}, "-nats-url / NATS_URL"},
		{"REDIS_CLUSTER not a bool", map[string]string{"REDIS_CLUSTER": "maybe"}, `REDIS_CLUSTER: got "maybe", want true or false`},
		{"cluster over a unix socket", map[string]string{"REDIS_CLUSTER": "1", "REDIS_URL": "unix:///run/redis.sock"}, "-redis-url / REDIS_URL"},
		{"cluster url with an unknown option", map[string]string{"REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:1?bogus=1"}, "-redis-url / REDIS_URL"},
		{"STREAM_REPLICAS too many", map[string]string{"STREAM_REPLICAS": "7"}, `-stream-replicas / STREAM_REPLICAS: got "7", want 1 to 5`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cfg Config
			env := &environment{getenv: func(k string) string { return c.env[k] }, stderr: io.Discard}
			fs, errs := newFlagSet("projector", env, &cfg, "nats", "redis", "projector")
			err := parse(fs, errs, &cfg, nil)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("parse: %v, want accepted", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("parse: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestClusterPausedProjector: two `sharesd projector` processes on a
// 3-node JetStream cluster and a Redis Cluster while events are published;
// the first projects alone, the second joins and takes half the
// partitions. The first is stopped with SIGSTOP mid-stream for longer than
// LEASE_TTL, until the second has taken its partitions over and moved on,
// then resumed with SIGCONT: it wakes with batches fetched before the pause
// and writes them after the new owner wrote past them. The per-render
// sequence guard must make those late writes harmless and the lease fence
// must refuse its positions: at the end every render equals the reference
// model (Verify: no view lost or counted twice), the click counts add up
// to the views published, the saved positions are the stream's head (lag
// 0), and the resumed process says it lost a partition lease and takes a
// new share instead of dying.
func TestClusterPausedProjector(t *testing.T) {
	faultLong(t)
	t.Parallel()
	f, nats, _, env := startClusterFault(t)
	bin, js := f.bin, f.js
	ctx := context.Background()

	first := startFaultChild(t, bin, env, "projector", "-http-addr", "127.0.0.1:0")
	waitStreams(t, js, 3)
	nats.WaitStreamLeader(events.Stream)
	w := newFaultWork(8, 2, 40, 3, 20_000)
	f.publishSetup(t, w)
	f.waitCaughtUp(t, first, 30*time.Second)
	owners := f.leaseOwners(t) // the first one's: the second is not running yet
	if len(owners) != 1 {
		t.Fatalf("lease owners %q: want the first projector alone", owners)
	}
	holder := owners[0]
	second := startFaultChild(t, bin, env, "projector", "-http-addr", "127.0.0.1:0")

	pub := f.publishInBackground(t, w.msgs)
	live := f.publishLive(t, w, w.renders)
	polltest.WaitFor(t, 60*time.Second, func() error {
		if got := pub.sent.Load(); got < int64(len(w.msgs)/4) {
			return fmt.Errorf("%d of %d published", got, len(w.msgs))
		}
		return nil
	})
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	paused := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := first.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT: %v", err)
			}
		}
	}
	defer resume()

	// The second takes the first one's partitions once their leases
	// expire (LEASE_TTL, 5s), and applies past where the first one stopped.
	var from uint64
	polltest.WaitFor(t, 20*time.Second, func() error {
		if err := second.alive(); err != nil {
			t.Fatal(err)
		}
		owners, err := f.store.LeaseOwners(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(owners, holder) || slices.Contains(owners, "") {
			return fmt.Errorf("partition owners %q after %v: want the second projector's alone", owners, time.Since(paused).Round(time.Millisecond))
		}
		from = f.activePos(t)
		return nil
	})
	t.Logf("the second projector held every partition %v after the pause, at position %d", time.Since(paused).Round(time.Millisecond), from)
	const leaseTTL = 5 * time.Second // projector.Config's default; sharesd sets no other
	polltest.WaitFor(t, 30*time.Second, func() error {
		if pos := f.activePos(t); pos < from+2000 {
			return fmt.Errorf("the new holder saved %d, want %d", pos, from+2000)
		}
		if d := time.Since(paused); d <= leaseTTL {
			return fmt.Errorf("paused for %v, not yet a whole lease (%v)", d, leaseTTL)
		}
		return nil
	})
	resume()
	t.Logf("the first projector resumed after %v", time.Since(paused).Round(time.Millisecond))
	err := polltest.Poll(20*time.Second, func() error {
		if err := first.alive(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(first.out.String(), "lost a partition lease") {
			return errors.New(`the resumed projector has not logged "lost a partition lease"`)
		}
		return nil
	})
	if err != nil { // show where it is stuck: SIGQUIT prints every goroutine's stack
		_ = first.cmd.Process.Signal(syscall.SIGQUIT)
		<-first.finished
		t.Fatalf("%v; its goroutines:\n%s", err, first.out.Tail(400))
	}

	pub.wait(t)
	live.stop(t)
	f.waitCaughtUp(t, second, 60*time.Second)
	if err := first.alive(); err != nil {
		t.Fatalf("the resumed projector: %v", err)
	}
	f.checkExact(t, w.plus(int(live.views.Load())))
}

// startClusterFault starts a 3-node JetStream cluster and a Redis Cluster
// for the real binary, and returns the fault harness on them with the
// environment a sharesd child needs to use both.
func startClusterFault(t *testing.T) (*faultEnv, *natstest.Cluster, *redistest.Cluster, []string) {
	t.Helper()
	bin := faultBuild(t)
	nats := natstest.StartCluster(t, 3)
	rc := redistest.StartCluster(t)
	_, js := nats.Connect(t, jetstream.WithPublishAsyncTimeout(5*time.Second), jetstream.WithPublishAsyncMaxPending(2000))
	f := &faultEnv{bin: bin, js: js, store: testStore(rc.Client(t), readmodel.DefaultHorizon)}
	env := []string{"NATS_URL=" + nats.URL, "REDIS_URL=" + rc.URL, "REDIS_CLUSTER=true", "STREAM_REPLICAS=3", "LOG_FORMAT=json"}
	return f, nats, rc, env
}
