package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// config is every setting of the bench.
type config struct {
	workload     workloadConfig
	Rate         float64       // live events per second in the freshness phase
	Duration     time.Duration // measured time of each load phase
	Warmup       time.Duration // unmeasured time before each closed-loop phase
	Freshness    time.Duration // length of the freshness phase
	Revocations  int           // keys revoked in the revocation phase
	Clients      int           // closed-loop HTTP clients
	ApplyWorkers int           // goroutines of the Redis apply ceiling
	BatchSize    int           // events per Redis round trip (the projector's default)
	NATSURL      string
	RedisURL     string
	CPUProfile   string
	MemProfile   string
	PprofAddr    string
	Quick        bool
	Scale        bool // run the scale phase (scale.go)
	ScaleEvents  int  // events of the scale phase's backlog (0: the whole workload)
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sharesbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.workload.Projects, "projects", 10, "projects (one API key each)")
	fs.IntVar(&c.workload.Renders, "renders", 20000, "renders (16 of them have exactly 1, 10, 100 or 1000 shares)")
	fs.IntVar(&c.workload.Shares, "shares", 200000, "shares, skewed over the renders")
	fs.Float64Var(&c.workload.Revoked, "revoked", 0.10, "fraction of shares revoked")
	fs.IntVar(&c.workload.Views, "views", 2000000, "views, skewed over the shares")
	fs.Uint64Var(&c.workload.Seed, "seed", 1, "seed of the workload: the same seed makes the same events")
	fs.Float64Var(&c.Rate, "rate", 5000, "live events per second while freshness is measured")
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "measured time of each HTTP load phase")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "unmeasured warm-up before each closed-loop phase")
	fs.DurationVar(&c.Freshness, "freshness", 10*time.Second, "length of the live freshness phase")
	fs.IntVar(&c.Revocations, "revocations", 100, "API keys revoked one at a time, each timed to the API's first 401, under the open loop")
	fs.IntVar(&c.Clients, "clients", 32, "concurrent keep-alive HTTP clients of the closed-loop load")
	fs.IntVar(&c.ApplyWorkers, "apply-workers", 4, "goroutines pipelining batches in the Redis apply ceiling")
	fs.IntVar(&c.BatchSize, "batch", 512, "events per Redis round trip, for the projector and the apply ceiling")
	fs.StringVar(&c.NATSURL, "nats-url", "", "use this NATS server (its CRAFTKIT stream must be empty or missing) instead of an embedded one")
	fs.StringVar(&c.RedisURL, "redis-url", "", "use this Redis (its database must be empty: the bench flushes it between phases) instead of a redis-server child")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file; samples carry a phase label (go tool pprof -tagfocus phase=api ...)")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write an allocation profile to this file at the end")
	fs.StringVar(&c.PprofAddr, "pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) while the bench runs")
	fs.BoolVar(&c.Scale, "scale", true, "run the scale phase: catch-up with 1, 2 and 4 projectors on a 3-node JetStream cluster and a Redis Cluster, and the API on both Redis set-ups")
	fs.IntVar(&c.ScaleEvents, "scale-events", 500000, "events of the scale phase's backlog, the first of the workload (0: all of it)")
	fs.BoolVar(&c.Quick, "quick", false, "a small run: 3 projects, 2,000 renders, 20,000 shares, 200,000 views, 2s phases, a 100,000-event scale backlog (explicit flags still win)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		quick("projects", func() { c.workload.Projects = 3 })
		quick("renders", func() { c.workload.Renders = 2000 })
		quick("shares", func() { c.workload.Shares = 20000 })
		quick("views", func() { c.workload.Views = 200000 })
		quick("duration", func() { c.Duration = 2 * time.Second })
		quick("warmup", func() { c.Warmup = 500 * time.Millisecond })
		quick("freshness", func() { c.Freshness = 4 * time.Second })
		quick("scale-events", func() { c.ScaleEvents = 100000 })
	}
	switch {
	case c.workload.Revoked < 0 || c.workload.Revoked > 1:
		return c, fmt.Errorf("-revoked: got %v, want a fraction between 0 and 1", c.workload.Revoked)
	case c.Rate <= 0 || c.Duration <= 0 || c.Freshness <= 0:
		return c, errors.New("-rate, -duration and -freshness must be positive")
	case c.ScaleEvents < 0:
		return c, errors.New("-scale-events must be 0 (the whole workload) or more")
	case c.Clients < 1 || c.ApplyWorkers < 1 || c.BatchSize < 1 || c.Revocations < 1:
		return c, errors.New("-clients, -apply-workers, -batch and -revocations must be at least 1")
	}
	return c, nil
}
