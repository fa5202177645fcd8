package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/cmd/internal/local"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// The scale phase runs the projector the way issue 10 deploys it: a
// 3-node JetStream cluster (embedded, in this process) holding the R3
// stream, a Redis Cluster of 3 masters and 3 replicas (redis-server
// children), PARTITIONS=8. It publishes the workload once, then for 1, 2
// and 4 projectors resets the read model to an empty active generation and
// times the catch-up of the whole backlog. The projectors are in-process
// projector.Projector instances, each with its own NATS connection and
// Redis Cluster client, so the CPU figures are the bench process's (the
// NATS nodes and every projector) and the six redis-servers', not one
// projector's. Then it measures the API on 10-share renders on the cluster
// and, in the same minute, on the single node the earlier phases filled.

// scaleProcs are the numbers of projector processes the phase compares.
var scaleProcs = []int{1, 2, 4}

// scaleResults is what the scale phase measured.
type scaleResults struct {
	ran     bool
	events  int     // events of the backlog
	publish float64 // events/s published to the R3 stream
	bytes   float64 // stream bytes per event (what each projector receives per event)
	runs    []scaleRun
	api     []scaleLoadRun // GET 10 shares on each Redis, with and without the body cache
}

// scaleRun is one catch-up of the backlog by procs projectors.
type scaleRun struct {
	procs   int
	elapsed time.Duration // start → every partition applied to the head
	spread  time.Duration // start → the partitions shared fairly (0: never seen)
	saved   time.Duration // start → every partition's position saved at the head
	applied []float64     // events each projector applied
	inBytes []uint64      // bytes each projector's NATS connection received
	cpu     usage         // bench process / the six redis-servers
}

// scaleEnv is the two clusters and the bench's own clients of them.
type scaleEnv struct {
	nats    *natstest.Cluster
	redis   *redistest.Cluster
	nc      *nats.Conn
	js      jetstream.JetStream
	pubErrs *publishErrors
	admin   *redis.ClusterClient // FLUSHALL on every master
	store   *readmodel.Store     // the control state, read and reset
	nodes   []*redis.Client      // one per node: INFO cpu
	lastSeq uint64
	bytes   float64       // the stream's bytes once published
	lease   time.Duration // the projectors' LEASE_TTL (0: the default, 5s)
}

// scale runs the scale phase (see the comment at the top of this file).
func (b *bench) scale(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "sharesbench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env, err := launchScale(ctx, dir, b.progress)
	if err != nil {
		return err
	}
	defer env.close()
	n := b.w.Len()
	if b.cfg.ScaleEvents > 0 {
		n = min(n, b.cfg.ScaleEvents)
	}
	rate, err := env.publish(ctx, b.w, n, b.progress)
	if err != nil {
		return err
	}
	b.scaleRes = scaleResults{ran: true, events: n, publish: rate, bytes: env.bytes / float64(n)}
	for _, procs := range scaleProcs {
		r, err := env.catchUp(ctx, procs, b.cfg.BatchSize, b.progress)
		if err != nil {
			return fmt.Errorf("%d projectors: %w", procs, err)
		}
		b.scaleRes.runs = append(b.scaleRes.runs, r)
	}
	return b.scaleAPI(ctx, env)
}

// launchScale starts the clusters, creates the R3 streams and connects.
func launchScale(ctx context.Context, dir string, progress io.Writer) (_ *scaleEnv, err error) {
	env := &scaleEnv{pubErrs: &publishErrors{}}
	defer func() {
		if err != nil {
			env.close()
		}
	}()
	start := time.Now()
	if env.nats, err = natstest.LaunchCluster(3, filepath.Join(dir, "nats")); err != nil {
		return nil, err
	}
	if env.redis, err = redistest.LaunchCluster(filepath.Join(dir, "redis")); err != nil {
		return nil, err
	}
	if env.nc, env.js, err = connectNATS(env.nats.URL, env.pubErrs); err != nil {
		return nil, err
	}
	if err := ensureReplicated(ctx, env.js, 3); err != nil {
		return nil, err
	}
	opt, err := local.RedisClusterOptions(env.redis.URL, false)
	if err != nil {
		return nil, err
	}
	env.admin = redis.NewClusterClient(opt)
	env.store = readmodel.New(env.admin, readmodel.DefaultHorizon)
	env.store.SetPartitions(events.DefaultPartitions)
	for _, s := range env.redis.Nodes {
		env.nodes = append(env.nodes, redis.NewClient(&redis.Options{Addr: s.Addr}))
	}
	fmt.Fprintf(progress, "  3-node JetStream cluster (R3 stream) and Redis Cluster (3 masters + 3 replicas) ready in %.1fs\n", time.Since(start).Seconds())
	return env, nil
}

// ensureReplicated creates the streams and the dead-letter bucket with
// replicas copies, as `sharesd` does with STREAM_REPLICAS, then lets
// projector.EnsureStreams check them, and waits for the stream's leader.
func ensureReplicated(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range []jetstream.StreamConfig{projector.StreamConfig(), projector.DeadLetterConfig()} {
		cfg.Replicas = replicas
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	kv := projector.DeadLetterBucketConfig()
	kv.Replicas = replicas
	if _, err := js.CreateKeyValue(ctx, kv); err != nil {
		return fmt.Errorf("bucket %s: %w", kv.Bucket, err)
	}
	if err := projector.EnsureStreams(ctx, js); err != nil {
		return err
	}
	return polltest.Poll(30*time.Second, func() error {
		s, err := js.Stream(ctx, events.Stream)
		if err != nil {
			return err
		}
		if c := s.CachedInfo().Cluster; c == nil || c.Leader == "" || len(c.Replicas) != replicas-1 {
			return fmt.Errorf("stream %s: no leader with %d replicas yet", events.Stream, replicas-1)
		}
		return nil
	})
}

func (env *scaleEnv) close() {
	for _, n := range env.nodes {
		_ = n.Close()
	}
	if env.admin != nil {
		_ = env.admin.Close()
	}
	if env.nc != nil {
		env.nc.Close()
	}
	if env.redis != nil {
		env.redis.Stop()
	}
	if env.nats != nil {
		env.nats.Close()
	}
}

// publish publishes the first n events of w to the R3 stream and checks
// that the stream holds exactly them.
func (env *scaleEnv) publish(ctx context.Context, w *workload, n int, progress io.Writer) (float64, error) {
	start := time.Now()
	tick := newTicker(progress, "publish to the R3 stream", n)
	var buf []byte
	for i := range n {
		subject, id, data := w.Event(i, buf)
		if _, err := publishAsync(ctx, env.js, subject, id, append([]byte(nil), data...)); err != nil {
			return 0, fmt.Errorf("publish event %d: %w", i, err)
		}
		buf = data[:0]
		tick.add(1)
	}
	select {
	case <-env.js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	rate := float64(n) / time.Since(start).Seconds()
	tick.done()
	if err := env.pubErrs.err(); err != nil {
		return 0, err
	}
	s, err := env.js.Stream(ctx, events.Stream)
	if err != nil {
		return 0, err
	}
	if st := s.CachedInfo().State; st.Msgs != uint64(n) {
		return 0, fmt.Errorf("R3 stream holds %d events after publishing %d", st.Msgs, n)
	}
	env.lastSeq, env.bytes = s.CachedInfo().State.LastSeq, float64(s.CachedInfo().State.Bytes)
	return rate, nil
}

// reset empties the Redis Cluster and leaves an active generation at
// position 0 with every partition's position there: what a build on an
// empty stream leaves. The stream's backlog is then what the projectors
// catch up on live, each on its partitions. (From no active generation at
// all, one projector builds the whole stream with every partition, however
// many run: the design's generation work, measured by the catch-up row of
// the main table.)
func (env *scaleEnv) reset(ctx context.Context) error {
	err := env.admin.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.FlushAll(ctx).Err()
	})
	if err != nil {
		return fmt.Errorf("flush the Redis Cluster: %w", err)
	}
	if err := env.store.AgreePartitions(ctx); err != nil {
		return err
	}
	gen := readmodel.NewGen(time.Now())
	if err := env.store.SetPos(ctx, gen, 0); err != nil {
		return err
	}
	ok, err := env.store.Activate(ctx, gen, "")
	if err == nil && !ok {
		err = errors.New("another generation is active after FLUSHALL")
	}
	return err
}

// cpu reads the CPU clocks of this process and of every Redis node.
func (env *scaleEnv) cpu(ctx context.Context) cpuClock {
	c := readCPU(ctx, env.nodes[0])
	for _, n := range env.nodes[1:] {
		if m, err := redisInfo(ctx, n, "cpu"); err == nil {
			c.redisCPU += time.Duration((m["used_cpu_sys"] + m["used_cpu_user"]) * float64(time.Second))
		}
	}
	return c
}
