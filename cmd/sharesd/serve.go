package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	group "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/cmd/internal/local"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// mode is what a serving process runs.
type mode int

const (
	modeAll       mode = iota // the projector and the API: serve, dev
	modeProjector             // the projector; HTTP serves only health and metrics
	modeAPI                   // the API
)

func (m mode) projector() bool { return m != modeAPI }
func (m mode) api() bool       { return m != modeProjector }

func runServe(ctx context.Context, env *environment, args []string) error {
	return serveMode(ctx, env, "serve", args, modeAll)
}

func runProjector(ctx context.Context, env *environment, args []string) error {
	return serveMode(ctx, env, "projector", args, modeProjector)
}

func runAPI(ctx context.Context, env *environment, args []string) error {
	return serveMode(ctx, env, "api", args, modeAPI)
}

func serveMode(ctx context.Context, env *environment, name string, args []string, m mode) error {
	var cfg Config
	groups := []string{"redis", "http"}
	if m.projector() {
		groups = append(groups, "nats", "projector")
	}
	if m.api() {
		groups = append(groups, "api")
	}
	fs, errs := newFlagSet(name, env, &cfg, groups...)
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("-http-addr / HTTP_ADDR: %w", err)
	}
	return serve(ctx, newLogger(cfg, env.stderr), cfg, ln, m)
}

// serve runs the components of mode m, and extra beside them (dev's demo),
// on ln until ctx ends or one of them fails. Each component is one actor of
// the run group; the clients are closed after every actor has returned.
func serve(ctx context.Context, logger *slog.Logger, cfg Config, ln net.Listener, m mode, extra ...func(context.Context) error) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	apiRDB, err := redisClient(cfg, true)
	if err != nil {
		return err
	}
	defer apiRDB.Close()
	store := newStore(apiRDB, cfg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g group.Group
	g.Add(func() error { return agreePartitions(ctx, logger, store) }, func(error) { cancel() })
	var proj *projectorPart
	if m.projector() {
		if proj, err = newProjectorPart(logger, cfg, reg); err != nil {
			return err
		}
		defer proj.Close()
		g.Add(func() error { return proj.run(ctx, logger, store) }, func(error) { cancel() })
	}
	positions := api.NewPositions()
	metrics := api.NewMetrics(reg)
	handler := api.NewServer(logger.With("component", "api"), store, positions, metrics, api.Config{
		Env: cfg.Env, ShareBase: cfg.ShareBase, MinSeqWait: cfg.MinSeqWait, Partitions: cfg.Partitions,
		BodyCacheBytes: bodyCacheBytes(cfg.BodyCacheBytes),
		Ready:          readiness(store, proj, cfg.ReadyStall),
		HealthOnly:     !m.api(),
		MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
	})
	if m.api() { // the announcements move positions and keep the key cache exact
		g.Add(func() error {
			store.FollowApplied(ctx, handler.Follow)
			return nil
		}, func(error) { cancel() })
	}
	addHTTP(&g, logger, cfg, ln, m, handler, metrics, positions)
	for _, f := range extra {
		g.Add(func() error { return f(ctx) }, func(error) { cancel() })
	}
	g.Add(group.ContextHandler(ctx))
	if err := g.Run(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// projectorPart is the projector with its clients: NATS, which it keeps
// trying while down, and its own Redis client, which waits and retries
// where the API's fails fast.
type projectorPart struct {
	*clients
	proj     *projector.Projector
	replicas int // of the streams it creates
}

func newProjectorPart(logger *slog.Logger, cfg Config, reg prometheus.Registerer) (*projectorPart, error) {
	c, err := dial(cfg, logger, true)
	if err != nil {
		return nil, err
	}
	proj := projector.New(c.js, c.store, logger.With("component", "projector"), projector.NewMetrics(reg),
		projector.Config{BatchSize: cfg.BatchSize, MaxFetchBytes: cfg.MaxFetchBytes, LeaseTTL: cfg.LeaseTTL})
	return &projectorPart{clients: c, proj: proj, replicas: cfg.StreamReplicas}, nil
}

// run creates the streams when missing, then projects until ctx ends.
func (p *projectorPart) run(ctx context.Context, logger *slog.Logger, store *readmodel.Store) error {
	if err := prepareStream(ctx, logger, p.js, store, p.replicas); err != nil {
		return err
	}
	if err := agreed(ctx, p.store); err != nil {
		return err
	}
	return p.proj.Run(ctx)
}

// addHTTP adds the HTTP server of handler on ln, its connections limited
// to cfg.MaxConns. On shutdown, in-flight requests finish (waiting ?minSeq
// requests answer now) while the projector saves its position.
func addHTTP(g *group.Group, logger *slog.Logger, cfg Config, ln net.Listener, m mode, handler http.Handler, metrics *api.Metrics, positions *api.Positions) {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.MinSeqWait + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	conns := api.LimitConns(srv, ln, cfg.MaxConns, metrics)
	g.Add(func() error {
		logger.Info("listening", "addr", ln.Addr().String(), "projector", m.projector(), "api", m.api(), "max_conns", cfg.MaxConns)
		if err := srv.Serve(conns); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		positions.Close()
		sctx, done := context.WithTimeout(context.Background(), 8*time.Second)
		defer done()
		_ = srv.Shutdown(sctx)
	})
}

// prepareStream creates the streams when missing and warns about risky
// configuration, retrying while NATS is unreachable.
func prepareStream(ctx context.Context, logger *slog.Logger, js jetstream.JetStream, store *readmodel.Store, replicas int) error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := ensureStreams(ctx, js, replicas)
		if err == nil {
			return projector.CheckStartup(ctx, logger, js, store.MaxmemoryPolicy)
		}
		logger.Warn("streams not ready; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// ensureStreams is projector.EnsureStreams creating the streams and the
// dead-letter bucket with replicas copies each (STREAM_REPLICAS, 3 on a
// JetStream cluster) when they are missing. Existing ones are used as they
// are: changing their replicas is the operator's (nats stream edit).
func ensureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas > 1 {
		for _, cfg := range []jetstream.StreamConfig{projector.StreamConfig(), projector.DeadLetterConfig()} {
			cfg.Replicas = replicas
			if _, err := js.Stream(ctx, cfg.Name); errors.Is(err, jetstream.ErrStreamNotFound) {
				if _, err := js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
					return fmt.Errorf("stream %s: %w", cfg.Name, err)
				}
			}
		}
		kv := projector.DeadLetterBucketConfig()
		kv.Replicas = replicas
		if _, err := js.KeyValue(ctx, kv.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
			_, _ = js.CreateKeyValue(ctx, kv) // a refusal is EnsureStreams's to judge
		}
	}
	return projector.EnsureStreams(ctx, js)
}

// readiness reports why the process cannot serve, or nil, as an
// *api.NotReady: its reason code is public, its cause only logged.
func readiness(store *readmodel.Store, proj *projectorPart, stall time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := store.Ping(ctx); err != nil {
			return &api.NotReady{Reason: api.ReasonRedis, Err: err}
		}
		if proj != nil && !proj.nc.IsConnected() {
			return &api.NotReady{Reason: api.ReasonNATS, Err: errors.New("nats connection " + proj.nc.Status().String())}
		}
		ctl, err := store.ReadControl(ctx)
		if err != nil {
			return &api.NotReady{Reason: api.ReasonRedis, Err: err}
		}
		if ctl.Active == "" {
			return &api.NotReady{Reason: api.ReasonNoGeneration, Err: errors.New("a rebuild from zero is in progress")}
		}
		if proj != nil {
			return stalled(ctx, store, proj.proj.Status(), stall)
		}
		return nil
	}
}

// stalled reports api.ReasonStalled when events wait beyond the projector's
// position and it has not advanced for longer than bound, while it holds a
// partition lease or no projector holds any: a Redis that refuses writes
// refuses the leases too. A projector without partitions while others
// hold them answers for nothing.
func stalled(ctx context.Context, store *readmodel.Store, st projector.Status, bound time.Duration) error {
	if st.Head <= st.Applied || st.Progress.IsZero() {
		return nil
	}
	idle := time.Since(st.Progress)
	if idle <= bound {
		return nil
	}
	if !st.Leader {
		held, err := store.LeasesHeld(ctx)
		if err != nil {
			return &api.NotReady{Reason: api.ReasonRedis, Err: err}
		}
		if held > 0 {
			return nil
		}
	}
	return &api.NotReady{Reason: api.ReasonStalled, Err: fmt.Errorf("%d events waiting, none applied for %s (bound %s); last error: %s",
		st.Head-st.Applied, idle.Round(time.Second), bound, st.LastError)}
}

// bodyCacheBytes is -body-cache-bytes as api.Config takes it: 0 there is
// the default and a negative number turns the cache off.
func bodyCacheBytes(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// agreePartitions checks, once Redis answers, that the deployment uses
// this process's number of partitions (recording it if none is) and fails
// if not, which stops the process; otherwise it waits for ctx to end.
func agreePartitions(ctx context.Context, logger *slog.Logger, store *readmodel.Store) error {
	if err := agreed(ctx, store); err != nil {
		logger.Error("refusing to run", "err", err)
		return err
	}
	<-ctx.Done()
	return nil
}

// agreed waits until Redis answers AgreePartitions and returns its verdict
// with what to do about a mismatch.
func agreed(ctx context.Context, store *readmodel.Store) error {
	for {
		err := store.AgreePartitions(ctx)
		switch {
		case errors.Is(err, readmodel.ErrPartitionsDiffer):
			n, _ := store.RecordedPartitions(ctx)
			return fmt.Errorf("-partitions / PARTITIONS: %w. Every process of a deployment must use the same number: start this one with PARTITIONS=%d, or re-partition the deployment (README, \"Re-partitioning\": a blue/green rebuild with sharesd rebuild -repartition)", err, n)
		case err == nil, ctx.Err() != nil:
			return nil
		}
		select { // Redis is down: /readyz says so meanwhile
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// connectNATS connects with unlimited reconnects. When background is set it
// returns at once even if the server is down and keeps trying.
func connectNATS(url string, logger *slog.Logger, background bool) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name("sharesd"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(background),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("-nats-url / NATS_URL: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// redisClient makes a client with local.RedisClient, of a Redis Cluster
// when cfg.RedisCluster is set: the API's has short timeouts, so a dead
// Redis is a fast 503; the projector's waits and retries.
func redisClient(cfg Config, forAPI bool) (redis.UniversalClient, error) {
	rdb, err := local.RedisClient(cfg.RedisURL, cfg.RedisCluster, forAPI)
	if err != nil {
		return nil, fmt.Errorf("-redis-url / REDIS_URL: %w", err)
	}
	return rdb, nil
}
