package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// runRebuild rebuilds the whole read model (or one render) from the stream
// without taking the read path down. Interrupted, it resumes where it was.
func runRebuild(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("rebuild", env, &cfg, "nats", "redis", "projector")
	render := fs.String("render", "", "rebuild only this render (its id), swapping its keys atomically")
	fresh := fs.Bool("fresh", false, "start over instead of resuming an interrupted rebuild")
	repartition := fs.Bool("repartition", false,
		"rebuild for -partitions / PARTITIONS when the deployment uses another number (every projector stopped first), then record it")
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}
	if *repartition && *render != "" {
		return errors.New("-repartition rebuilds the whole read model: it does not go with -render")
	}
	if *render != "" && !events.IsUUID(*render) {
		return fmt.Errorf("-render: got %q, want a render id (a UUID)", *render)
	}
	logger := newLogger(cfg, env.stderr)
	c, err := connect(cfg, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := checkPartitions(ctx, c.store, *repartition); err != nil {
		return err
	}
	proj := newProjector(c, cfg, logger)

	show := newProgress(env.stderr, logger)
	start := time.Now()
	if *render != "" {
		if err := proj.RebuildRender(ctx, strings.ToLower(*render), show.report); err != nil {
			return fmt.Errorf("rebuild render %s: %w", *render, err)
		}
		show.finish()
		fmt.Fprintf(env.stdout, "render %s rebuilt and swapped in (%s)\n", *render, time.Since(start).Round(time.Millisecond))
		return nil
	}
	gen, err := proj.Rebuild(ctx, *fresh || *repartition, show.report)
	show.finish()
	if err == nil && *repartition {
		err = c.store.RecordPartitions(ctx)
	}
	switch {
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return fmt.Errorf("rebuild of generation %s interrupted; its position is saved: run `sharesd rebuild` again to resume", gen)
	case err != nil:
		return fmt.Errorf("rebuild: %w", err)
	}
	fmt.Fprintf(env.stdout, "generation %s rebuilt and active (%s)\n", gen, time.Since(start).Round(time.Millisecond))
	return nil
}

// checkPartitions refuses a rebuild with another number of partitions than
// the deployment's, unless it re-partitions; a re-partitioning needs every
// projector stopped, so that none applies the old partitions meanwhile.
func checkPartitions(ctx context.Context, store *readmodel.Store, repartition bool) error {
	recorded, err := store.RecordedPartitions(ctx)
	if err != nil {
		return fmt.Errorf("-redis-url / REDIS_URL: %w", err)
	}
	switch {
	case !repartition && recorded != 0 && recorded != store.Partitions():
		return fmt.Errorf("-partitions / PARTITIONS: the deployment uses %d partitions, this command was given %d; "+
			"give it %d, or re-partition with -repartition (README, \"Re-partitioning\")", recorded, store.Partitions(), recorded)
	case !repartition:
		return nil
	}
	held, err := store.LeasesHeld(ctx)
	if err != nil {
		return fmt.Errorf("-redis-url / REDIS_URL: %w", err)
	}
	if held > 0 {
		return fmt.Errorf("-repartition: %d partitions are held by running projectors; stop every projector first (sharesd status shows the owners), then run it again", held)
	}
	return nil
}

// clients are NATS and the projector's Redis: for a one-off command
// (rebuild, verify, status) and for the projector of serve.
type clients struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	rdb   redis.UniversalClient
	store *readmodel.Store
}

// connect is dial for a one-off command: NATS fails at once when down.
func connect(cfg Config, logger *slog.Logger) (*clients, error) { return dial(cfg, logger, false) }

// dial connects to NATS (see connectNATS for background) and makes the
// projector's Redis client.
func dial(cfg Config, logger *slog.Logger, background bool) (*clients, error) {
	nc, js, err := connectNATS(cfg.NATSURL, logger, background)
	if err != nil {
		return nil, err
	}
	rdb, err := redisClient(cfg, false)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &clients{nc: nc, js: js, rdb: rdb, store: newStore(rdb, cfg)}, nil
}

// newStore is the read model on rdb for the deployment cfg describes.
func newStore(rdb redis.UniversalClient, cfg Config) *readmodel.Store {
	s := readmodel.New(rdb, cfg.DedupeHorizon)
	s.SetPartitions(cfg.Partitions)
	return s
}

func (c *clients) Close() {
	c.rdb.Close()
	c.nc.Close()
}

// newProjector returns a one-off projector (rebuild) on c.
func newProjector(c *clients, cfg Config, logger *slog.Logger) *projector.Projector {
	return projector.New(c.js, c.store, logger.With("component", "rebuild"), projector.NewMetrics(prometheus.NewRegistry()),
		projector.Config{BatchSize: cfg.BatchSize, MaxFetchBytes: cfg.MaxFetchBytes, LeaseTTL: cfg.LeaseTTL})
}

// progress shows a rebuild's advance: a bar on a terminal, else a log line
// every few seconds.
type progress struct {
	w        io.Writer
	logger   *slog.Logger
	tty      bool
	start    time.Time
	last     time.Time
	first    uint64
	started  bool
	drawn    bool
	interval time.Duration
}

func newProgress(w io.Writer, logger *slog.Logger) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	interval := 5 * time.Second
	if tty {
		interval = 200 * time.Millisecond
	}
	return &progress{w: w, logger: logger, tty: tty, start: time.Now(), interval: interval}
}

func (p *progress) report(pr projector.Progress) {
	if !p.started {
		p.started, p.first = true, pr.Done
	}
	now := time.Now()
	if now.Sub(p.last) < p.interval && pr.Phase == "replaying" {
		return
	}
	p.last = now
	rate := float64(pr.Done-min(pr.Done, p.first)) / max(now.Sub(p.start).Seconds(), 1e-3)
	eta := "?"
	if rate > 0 && pr.Total >= pr.Done {
		eta = (time.Duration(float64(pr.Total-pr.Done)/rate) * time.Second).Round(time.Second).String()
	}
	if !p.tty {
		p.logger.Info("rebuild progress", "gen", pr.Gen, "phase", pr.Phase, "done", pr.Done, "total", pr.Total,
			"events_per_s", int(rate), "eta", eta)
		return
	}
	const width = 30
	filled := width
	if pr.Total > 0 {
		filled = int(float64(width) * float64(min(pr.Done, pr.Total)) / float64(pr.Total))
	}
	fmt.Fprintf(p.w, "\r%-22s [%s%s] %d/%d  %.0f ev/s  ETA %s ", pr.Phase, strings.Repeat("#", filled),
		strings.Repeat(".", width-filled), pr.Done, pr.Total, rate, eta)
	p.drawn = true
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// runVerify recomputes renders from the stream and compares them with what
// Redis serves. It prints each difference and fails when there is one.
func runVerify(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("verify", env, &cfg, "nats", "redis", "api")
	render := fs.String("render", "", "verify only this render (its id)")
	renders := fs.Int("renders", 0, "verify this many renders chosen at random (0: all)")
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}
	if *render != "" && !events.IsUUID(*render) {
		return fmt.Errorf("-render: got %q, want a render id (a UUID)", *render)
	}
	if *renders < 0 {
		return fmt.Errorf("-renders: got %d, want 0 (all) or more", *renders)
	}
	c, err := connect(cfg, newLogger(cfg, env.stderr))
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := projector.Verify(ctx, c.js, c.store, projector.VerifyOptions{
		RenderID: strings.ToLower(*render), Sample: *renders, DefaultBase: cfg.ShareBase, Horizon: cfg.DedupeHorizon,
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	for _, d := range rep.Diffs {
		fmt.Fprintf(env.stdout, "DRIFT %s: %s\n  stream: %s\n  redis:  %s\n", d.RenderID, d.Reason, d.Want, d.Got)
	}
	fmt.Fprintf(env.stdout, "checked %d renders and %d API keys against the stream up to seq %d: %d differ, %d moved on meanwhile\n",
		rep.Checked, rep.Keys, rep.Head, len(rep.Diffs), rep.Moved)
	if len(rep.Diffs) > 0 {
		return fmt.Errorf("drift in %d of %d checked", len(rep.Diffs), rep.Checked+rep.Keys)
	}
	return nil
}
