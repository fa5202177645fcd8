package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"runtime"
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
}

// run runs every phase in order and prints the table to stdout; progress
// goes to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, progress: stderr, pubErrs: &publishErrors{}}

	if cfg.PprofAddr != "" {
		go func() {
			err := http.ListenAndServe(cfg.PprofAddr, nil)
			fmt.Fprintf(stderr, "sharesbench: -pprof %s: %v\n", cfg.PprofAddr, err)
		}()
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	dir, err := os.MkdirTemp("", "sharesbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// NATS: embedded unless -nats-url.
	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := startNATS(dir + "/nats")
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL = ns.ClientURL()
	}
	nc, js, err := connectNATS(natsURL, b.pubErrs)
	if err != nil {
		return err
	}
	defer nc.Close()
	b.js = js
	if err := emptyStream(ctx, js); err != nil {
		return err
	}

	// Redis: a child redis-server unless -redis-url.
	b.redisURL = cfg.RedisURL
	if b.redisURL == "" {
		rs, err := startRedis(dir)
		if err != nil {
			return err
		}
		defer rs.Stop()
		b.redisURL = rs.URL
	}
	if b.rdb, err = redisClient(b.redisURL, false, 4); err != nil {
		return err
	}
	defer b.rdb.Close()
	if n, err := b.rdb.DBSize(ctx).Result(); err != nil || n > 0 {
		return fmt.Errorf("-redis-url: want an empty database (the bench flushes it), got %d keys (err %v)", n, err)
	}
	b.res.machine = describeMachine(ctx, b.rdb)
	fmt.Fprintf(stderr, "sharesbench on %d CPUs (%s), %s, redis %s, nats-server %s\n",
		b.res.machine.CPUs, b.res.machine.CPUModel, b.res.machine.GoVersion, b.res.machine.Redis, b.res.machine.NATSServer)

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
	start := time.Now()
	for _, p := range phases {
		fmt.Fprintf(stderr, "== %s (%.0fs elapsed)\n", p.name, time.Since(start).Seconds())
		var err error
		pprof.Do(ctx, pprof.Labels("phase", p.name), func(ctx context.Context) { err = p.run(ctx) })
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	b.res.total = time.Since(start)
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return err
		}
	}
	printReport(stdout, cfg, b.res)
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	return nil
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
