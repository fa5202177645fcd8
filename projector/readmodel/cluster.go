package readmodel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file is what a Redis Cluster needs beyond a single node: commands
// that must reach every master (SCAN, CONFIG GET), and the wait for
// replicas before a resume position may cover a batch (see Apply).

// ReplicaWait is how long Apply waits, on a Redis Cluster, for a replica of
// each master a batch wrote to to acknowledge the writes.
const ReplicaWait = time.Second

// ErrNotReplicated: a master with a replica did not have the writes of a
// batch acknowledged by a replica within ReplicaWait. The batch took effect
// on the master, but a failover could lose it, so its end must not become
// the resume position yet; applying it again is harmless.
var ErrNotReplicated = errors.New("readmodel: writes not acknowledged by a replica")

// cluster is the Redis Cluster client, or nil on a single node.
func (s *Store) cluster() *redis.ClusterClient {
	c, _ := s.rdb.(*redis.ClusterClient)
	return c
}

// forEachMaster runs f on every master of a cluster, or on the single node.
func (s *Store) forEachMaster(ctx context.Context, f func(context.Context, *redis.Client) error) error {
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, f)
	case *redis.Client:
		return f(ctx, c)
	}
	return fmt.Errorf("unsupported redis client %T", s.rdb)
}

// replicated makes sure, on a cluster, that every write made so far to the
// masters that hold keys reaches a replica before it returns nil: for each
// such master it bumps that master's fence key and sends WAIT 1 on the same
// connection. WAIT waits for the connection's last write, and the fence
// write comes after every earlier write of that master, this Store's or
// not, so the acknowledgement covers them all, including writes of an
// earlier attempt that this one found already applied. A master that has no
// replica in the cluster's view (its replica failed, or it took over from
// its failed master) cannot be failed over, so nothing of it can be lost
// that way, and it is not waited for. On a single node replicated does
// nothing.
func (s *Store) replicated(ctx context.Context, keys []string) error {
	cc := s.cluster()
	if cc == nil || len(keys) == 0 {
		return nil
	}
	masters := map[string]*redis.Client{}
	for _, k := range keys {
		m, err := cc.MasterForKey(ctx, k)
		if err != nil {
			return fmt.Errorf("wait for replicas: %w", err)
		}
		masters[m.Options().Addr] = m
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for addr, m := range masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.waitReplica(ctx, cc, addr, m); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		cc.ReloadState(ctx) // the topology may have changed: look again next time
		return fmt.Errorf("wait for replicas: %w", errors.Join(errs...))
	}
	return nil
}

// waitReplica bumps master's fence key and waits for one replica to
// acknowledge it. It answers ErrNotReplicated when none did while the
// cluster lists a replica of master.
func (s *Store) waitReplica(ctx context.Context, cc *redis.ClusterClient, addr string, master *redis.Client) error {
	key, err := s.fence(ctx, cc, addr)
	if err != nil {
		return err
	}
	p := master.Pipeline() // one connection: WAIT counts its writes
	p.Incr(ctx, key)
	acked := p.Do(ctx, "WAIT", 1, ReplicaWait.Milliseconds())
	if _, err := p.Exec(ctx); err != nil {
		s.fences.Delete(addr) // a MOVED fence key: its slot has moved
		return fmt.Errorf("%s: %w", addr, err)
	}
	if n, err := acked.Int(); err != nil || n >= 1 {
		return err
	}
	replicas, err := replicasOf(ctx, master)
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	if replicas == 0 {
		return nil
	}
	return fmt.Errorf("%s (%d replicas, none within %s): %w", addr, replicas, ReplicaWait, ErrNotReplicated)
}

// fence returns a fence key that lives on the master at addr, found once by
// trying fence key numbers until one hashes to a slot of that master.
func (s *Store) fence(ctx context.Context, cc *redis.ClusterClient, addr string) (string, error) {
	if k, ok := s.fences.Load(addr); ok {
		return k.(string), nil
	}
	for n := 0; n < 1<<16; n++ {
		k := fenceKey(strconv.Itoa(n))
		m, err := cc.MasterForKey(ctx, k)
		if err != nil {
			return "", err
		}
		if m.Options().Addr == addr {
			s.fences.Store(addr, k)
			return k, nil
		}
	}
	return "", fmt.Errorf("no fence key hashes to a slot of %s", addr)
}

// replicasOf counts the replicas of master in its own view of the cluster
// (CLUSTER NODES), leaving out those the cluster agrees have failed: they
// cannot be elected.
func replicasOf(ctx context.Context, master *redis.Client) (int, error) {
	nodes, err := master.ClusterNodes(ctx).Result()
	if err != nil {
		return 0, err
	}
	var me string
	lines := strings.Split(nodes, "\n")
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 2 && slices.Contains(strings.Split(f[2], ","), "myself") {
			me = f[0]
		}
	}
	n := 0
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 3 && f[3] == me && !slices.Contains(strings.Split(f[2], ","), "fail") {
			n++
		}
	}
	return n, nil
}

// reloadOnError makes a cluster client look at the cluster again (CLUSTER
// SLOTS, in the background, at most every 200ms) after any command fails
// for another reason than a missing key or its context. go-redis otherwise
// keeps sending a failed master's slots to it until its periodic reload,
// seconds after its replica took over.
type reloadOnError struct{ cc *redis.ClusterClient }

func (h reloadOnError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h reloadOnError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

func (h reloadOnError) check(err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	h.cc.ReloadState(context.Background()) // asynchronous
}
