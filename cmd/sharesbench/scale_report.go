package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/craftkit/sharesd/cmd/internal/local"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// scaleLoadRun is one closed loop of the API in the scale phase.
type scaleLoadRun struct {
	redis string // which Redis it read
	cache bool   // rendered bodies kept for reuse (the default), or every request reads Redis
	r     loadResult
}

// scaleAPI measures the API on the 10-share renders in closed loop, the
// load of the API phase, on the Redis Cluster the last catch-up filled and
// on the single node the earlier phases filled, one after the other, each
// with the body cache (a hot render is answered from memory while no
// announcement touched it) and without (every request reads Redis). No
// projector runs meanwhile. The CPU column of the cluster rows counts the
// six redis-servers.
func (b *bench) scaleAPI(ctx context.Context, env *scaleEnv) error {
	crdb, err := local.RedisClient(env.redis.URL, true, true)
	if err != nil {
		return err
	}
	defer crdb.Close()
	cstore := readmodel.New(crdb, readmodel.DefaultHorizon)
	cstore.SetPartitions(events.DefaultPartitions)
	srdb, err := redisClient(b.redisURL, true, 0)
	if err != nil {
		return err
	}
	defer srdb.Close()
	sstore := readmodel.New(srdb, readmodel.DefaultHorizon)
	for _, cache := range []bool{true, false} {
		for _, on := range []struct {
			redis string
			store *readmodel.Store
			cpu   func() cpuClock
		}{
			{"single Redis node", sstore, b.cpu(ctx)},
			{"Redis Cluster (3 masters + 3 replicas)", cstore, func() cpuClock { return env.cpu(ctx) }},
		} {
			r, err := b.scaleLoad(ctx, on.redis, on.store, cache, on.cpu)
			if err != nil {
				return err
			}
			b.scaleRes.api = append(b.scaleRes.api, scaleLoadRun{redis: on.redis, cache: cache, r: r})
		}
	}
	return nil
}

// scaleLoad serves the API on store and runs the closed loop on the
// 10-share renders; an answer other than 200 fails it.
func (b *bench) scaleLoad(ctx context.Context, what string, store *readmodel.Store, cache bool, cpu func() cpuClock) (_ loadResult, err error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	bodyCache := -1 // disabled
	if cache {
		bodyCache = 0 // the default bound
	}
	handler, _ := newAPIWith(actx, store, bodyCache)
	addr, stopAPI, err := serveHTTP(handler)
	if err != nil {
		return loadResult{}, err
	}
	defer func() { err = errors.Join(err, stopAPI()) }()
	r, err := closedLoop(ctx, addr, b.listRequests(addr, 10), 200, b.cfg.Clients, b.cfg.Warmup, b.cfg.Duration, cpu)
	if err == nil && r.errors > 0 {
		err = fmt.Errorf("%s: %d of %d answers were not 200", what, r.errors, r.requests)
	}
	fmt.Fprintf(b.progress, "  API on %s, body cache %v: %.0f req/s  p50 %.2fms  p99 %.2fms  CPU %.2f / %.2f\n",
		what, cache, r.rate(), ms(r.pct(0.50)), ms(r.pct(0.99)), r.cpu.goCores, r.cpu.redisCores)
	return r, err
}

// printScale prints the scale phase's own table after the main one.
func printScale(out io.Writer, cfg config, s scaleResults) {
	if !s.ran {
		return
	}
	fmt.Fprintf(out, "### Scale: 3-node JetStream cluster (R3), Redis Cluster (3 masters + 3 replicas), %d partitions\n\n", events.DefaultPartitions)
	fmt.Fprintf(out, "- backlog: the first %s events of the workload (%.0f stream bytes an event), published to the R3 stream at %s events/s; each run starts from an empty active generation (every partition at 0) and N in-process projectors, each with its own NATS connection and Redis Cluster client, LEASE_TTL 5s\n",
		num(float64(s.events)), s.bytes, num(s.publish))
	fmt.Fprintf(out, "- CPU: cores used by the bench process (the three NATS nodes, every projector, the load generator) / by the six redis-servers; every process shares the machine's cores\n\n")
	t := table{out}
	t.row("Projectors", "Catch-up: start → every partition at the head", "Total", "Per projector (events it applied / catch-up time)", "NATS bytes received: each / all", "Fair share after", "Positions saved after", "CPU go/redis")
	t.row("---:", "---:", "---:", "---", "---:", "---:", "---:", "---")
	for _, r := range s.runs {
		secs := r.elapsed.Seconds()
		per := make([]string, len(r.applied))
		for i, a := range r.applied {
			per[i] = num(a / secs)
		}
		var in uint64
		for _, b := range r.inBytes {
			in += b
		}
		t.row(fmt.Sprint(r.procs), fmt.Sprintf("%.2f s", secs), num(float64(s.events)/secs)+" ev/s", strings.Join(per, " + ")+" ev/s",
			fmt.Sprintf("%s / %s", gb(float64(in)/float64(len(r.inBytes))), gb(float64(in))), fmt.Sprintf("%.2f s", r.spread.Seconds()), fmt.Sprintf("%.2f s", r.saved.Seconds()), cores(r.cpu))
	}
	fmt.Fprintln(out)
	t.row("API, GET list, 10 shares, 200", "Bodies", "Result", "CPU go/redis")
	t.row("---", "---", "---:", "---")
	for _, a := range s.api {
		bodies := "every request reads Redis (body cache off)"
		if a.cache {
			bodies = "kept while unchanged (default)"
		}
		t.row(a.redis, bodies, reqs(a.r), cores(a.r.cpu))
	}
	fmt.Fprintf(out, "\n%d closed-loop clients, %s measured after %s warm-up, no projector running, one after the other.\n\n", cfg.Clients, cfg.Duration, cfg.Warmup)
}
