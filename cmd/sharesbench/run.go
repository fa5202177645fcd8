package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// bench holds what every phase uses.
type bench struct {
	cfg      config
	progress io.Writer
	js       jetstream.JetStream
	pubErrs  *publishErrors
	redisURL string
	rdb      *redis.Client // the bench's own: INFO, FLUSHDB
	w        *workload
	lastSeq  uint64
	res      results
	scaleRes scaleResults // the scale phase's (scale.go)
}

// run runs every phase in order and prints the table to stdout; progress
// goes to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	var done cleanup
	defer done.run()
	if err := startProfiling(cfg, stderr, &done); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sharesbench-")
	if err != nil {
		return err
	}
	done.add(func() { _ = os.RemoveAll(dir) })

	b := &bench{cfg: cfg, progress: stderr, pubErrs: &publishErrors{}}
	if err := b.openNATS(ctx, dir, &done); err != nil {
		return err
	}
	if err := b.openRedis(ctx, dir, &done); err != nil {
		return err
	}
	m := describeMachine(ctx, b.rdb)
	b.res.machine = m
	fmt.Fprintf(stderr, "sharesbench on %d CPUs (%s), %s, redis %s, nats-server %s\n", m.CPUs, m.CPUModel, m.GoVersion, m.Redis, m.NATSServer)

	if err := b.runPhases(ctx); err != nil {
		return err
	}
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return err
		}
	}
	printReport(stdout, cfg, b.res)
	printScale(stdout, cfg, b.scaleRes)
	return nil
}

// runPhases runs the phases in order, each under a pprof label of its name.
func (b *bench) runPhases(ctx context.Context) error {
	phases := []struct {
		name string
		run  func(context.Context) error
	}{
		{"workload", b.generate},
		{"publish", b.publish},
		{"jetstream-drain", b.drain},
		{"redis-apply", b.applyCeiling},
		{"projection", b.projectAndServe}, // catch-up, then the HTTP phases while the projector runs live
	}
	if b.cfg.Scale {
		phases = append(phases, struct {
			name string
			run  func(context.Context) error
		}{"scale", b.scale})
	}
	start := time.Now()
	for _, p := range phases {
		fmt.Fprintf(b.progress, "== %s (%.0fs elapsed)\n", p.name, time.Since(start).Seconds())
		var err error
		pprof.Do(ctx, pprof.Labels("phase", p.name), func(ctx context.Context) { err = p.run(ctx) })
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	b.res.total = time.Since(start)
	return nil
}

// cleanup is a stack of functions run in reverse order, as defers are, for
// what run opens in the functions it calls.
type cleanup []func()

func (c *cleanup) add(f func()) { *c = append(*c, f) }

func (c *cleanup) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
}

func (b *bench) generate(context.Context) error {
	w, err := newWorkload(b.cfg.workload)
	if err != nil {
		return err
	}
	b.w = w
	b.res.events = w.Len()
	b.res.workload = w.describe()
	fmt.Fprintf(b.progress, "  %s\n", b.res.workload)
	return nil
}

func (b *bench) publish(ctx context.Context) error {
	last, rate, err := publishWorkload(ctx, b.js, b.w, b.pubErrs, b.progress)
	if err != nil {
		return err
	}
	b.lastSeq, b.res.publishRate = last, rate
	return nil
}

func (b *bench) drain(ctx context.Context) error {
	c0 := readCPU(ctx, b.rdb)
	rate, err := drainStream(ctx, b.js, b.lastSeq, b.cfg.BatchSize, b.progress)
	b.res.drain, b.res.drainCPU = rate, readCPU(ctx, b.rdb).since(c0)
	return err
}

// applyCeiling applies the workload from memory twice: with the default
// dedupe horizon (the ceiling, and memory within the horizon), then with a
// horizon of 1ms (memory once the horizon has passed). Redis is flushed
// after each.
func (b *bench) applyCeiling(ctx context.Context) error {
	for _, h := range []struct {
		horizon time.Duration
		out     *applyRun
	}{{readmodel.DefaultHorizon, &b.res.apply}, {time.Millisecond, &b.res.applyNoDedupe}} {
		fmt.Fprintf(b.progress, "  dedupe horizon %s\n", h.horizon)
		rdb, err := redisClient(b.redisURL, false, b.cfg.ApplyWorkers+2)
		if err != nil {
			return err
		}
		run, err := applyWorkload(ctx, b.rdb, readmodel.New(rdb, h.horizon), b.w, b.cfg.BatchSize, b.cfg.ApplyWorkers, 2*time.Millisecond, b.progress)
		_ = rdb.Close()
		if err != nil {
			return err
		}
		*h.out = run
		if err := b.rdb.FlushDB(ctx).Err(); err != nil {
			return err
		}
	}
	return nil
}

// projectAndServe measures the projector's catch-up from an empty Redis,
// then leaves it running live under the API phases and the freshness phase.
func (b *bench) projectAndServe(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prdb, err := redisClient(b.redisURL, false, 0)
	if err != nil {
		return err
	}
	defer prdb.Close()
	pstore := readmodel.New(prdb, readmodel.DefaultHorizon)

	before, err := usedMemory(ctx, b.rdb)
	if err != nil {
		return err
	}
	c0 := readCPU(ctx, b.rdb)
	start := time.Now()
	stop := startProjector(ctx, b.js, pstore, b.cfg.BatchSize)
	defer stop()
	done, err := waitCaughtUp(ctx, pstore, b.lastSeq, 30*time.Minute, b.progress)
	if err != nil {
		return err
	}
	b.res.catchUp = phaseTime{elapsed: done.Sub(start), cpu: readCPU(ctx, b.rdb).since(c0)}
	after, err := usedMemory(ctx, b.rdb)
	if err != nil {
		return err
	}
	b.res.projectedMemory = after - before
	fmt.Fprintf(b.progress, "  caught up: %d events in %.1fs (%.0f/s), used_memory +%d bytes\n",
		b.lastSeq, b.res.catchUp.elapsed.Seconds(), float64(b.lastSeq)/b.res.catchUp.elapsed.Seconds(), after-before)

	var errs []error
	pprof.Do(ctx, pprof.Labels("phase", "http"), func(ctx context.Context) { errs = append(errs, b.measureHTTP(ctx)) })
	return errors.Join(errs...)
}

// phaseTime is how long a phase took and what CPU it used.
type phaseTime struct {
	elapsed time.Duration
	cpu     usage
}
