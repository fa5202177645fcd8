package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
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

func runServe(ctx context.Context, env *environment, args []string) error {
	return serveMode(ctx, env, "serve", args, true, true)
}

func runProjector(ctx context.Context, env *environment, args []string) error {
	return serveMode(ctx, env, "projector", args, true, false)
}

func runAPI(ctx context.Context, env *environment, args []string) error {
	return serveMode(ctx, env, "api", args, false, true)
}

func serveMode(ctx context.Context, env *environment, name string, args []string, withProjector, withAPI bool) error {
	var cfg Config
	groups := []string{"redis", "http"}
	if withProjector {
		groups = append(groups, "nats", "projector")
	}
	if withAPI {
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
	return serve(ctx, newLogger(cfg, env.stderr), cfg, ln, withProjector, withAPI, nil)
}

// serve runs the projector and/or the API on ln until ctx ends. ready, if
// not nil, is closed once everything is wired and listening.
func serve(ctx context.Context, logger *slog.Logger, cfg Config, ln net.Listener, withProjector, withAPI bool, ready chan<- struct{}) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var (
		proj *projector.Projector
		nc   *nats.Conn
		js   jetstream.JetStream
	)
	if withProjector {
		var err error
		nc, js, err = connectNATS(cfg.NATSURL, logger, true)
		if err != nil {
			return err
		}
		defer nc.Close()
		rdb, err := redisClient(cfg.RedisURL, false)
		if err != nil {
			return err
		}
		defer rdb.Close()
		store := readmodel.New(rdb, cfg.DedupeHorizon)
		proj = projector.New(js, store, logger.With("component", "projector"), projector.NewMetrics(reg),
			projector.Config{BatchSize: cfg.BatchSize})
	}

	apiRDB, err := redisClient(cfg.RedisURL, true)
	if err != nil {
		return err
	}
	defer apiRDB.Close()
	apiStore := readmodel.New(apiRDB, cfg.DedupeHorizon)
	positions := api.NewPositions()
	httpMetrics := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sharesd_http_request_duration_seconds",
		Help:    "HTTP requests by route and status.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"route", "status"})
	reg.MustRegister(httpMetrics)
	handler := api.NewServer(logger.With("component", "api"), apiStore, positions, api.Config{
		Env: cfg.Env, ShareBase: cfg.ShareBase, MinSeqWait: cfg.MinSeqWait,
		Ready:      readiness(apiStore, nc, proj, cfg.ReadyStall),
		HealthOnly: !withAPI,
		Metrics:    promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Observe: func(route string, status int, d time.Duration) {
			httpMetrics.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
		},
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.MinSeqWait + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	conns := api.LimitConns(srv, ln, cfg.MaxConns)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sharesd_http_connections_open", Help: "HTTP connections open."},
			func() float64 { return float64(conns.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sharesd_http_connections_evicted_total",
			Help: "Idle HTTP connections closed to make room under -max-conns."},
			func() float64 { return float64(conns.Evicted()) }),
	)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g group.Group
	if proj != nil {
		g.Add(func() error {
			if err := prepareStream(ctx, logger, js, apiStore); err != nil {
				return err
			}
			return proj.Run(ctx)
		}, func(error) { cancel() })
	}
	if withAPI {
		g.Add(func() error {
			apiStore.FollowApplied(ctx, func(a readmodel.AppliedPos) { positions.Set(a.Seq) })
			return nil
		}, func(error) { cancel() })
	}
	g.Add(func() error {
		logger.Info("listening", "addr", ln.Addr().String(), "projector", withProjector, "api", withAPI, "max_conns", cfg.MaxConns)
		if ready != nil {
			close(ready)
		}
		if err := srv.Serve(conns); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		// In-flight requests finish (waiting ?minSeq requests answer now);
		// the projector saves its position.
		positions.Close()
		sctx, done := context.WithTimeout(context.Background(), 8*time.Second)
		defer done()
		_ = srv.Shutdown(sctx)
	})
	g.Add(group.ContextHandler(ctx))
	if err := g.Run(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// prepareStream creates the streams when missing and warns about risky
// configuration, retrying while NATS is unreachable.
func prepareStream(ctx context.Context, logger *slog.Logger, js jetstream.JetStream, store *readmodel.Store) error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := projector.EnsureStreams(ctx, js)
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

// readiness reports why the process cannot serve, or nil, as an
// *api.NotReady: its reason code is public, its cause only logged.
func readiness(store *readmodel.Store, nc *nats.Conn, proj *projector.Projector, stall time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := store.Ping(ctx); err != nil {
			return &api.NotReady{Reason: api.ReasonRedis, Err: err}
		}
		if nc != nil && !nc.IsConnected() {
			return &api.NotReady{Reason: api.ReasonNATS, Err: errors.New("nats connection " + nc.Status().String())}
		}
		ctl, err := store.ReadControl(ctx)
		if err != nil {
			return &api.NotReady{Reason: api.ReasonRedis, Err: err}
		}
		if ctl.Active == "" {
			return &api.NotReady{Reason: api.ReasonNoGeneration, Err: errors.New("a rebuild from zero is in progress")}
		}
		if proj != nil {
			return stalled(ctx, store, proj.Status(), stall)
		}
		return nil
	}
}

// stalled reports api.ReasonStalled when events wait beyond the projector's
// position and it has not advanced for longer than bound, while it holds
// the lease or no projector does: a Redis that refuses writes refuses the
// lease too. A standby whose leader holds the lease answers for nothing.
func stalled(ctx context.Context, store *readmodel.Store, st projector.Status, bound time.Duration) error {
	if st.Head <= st.Applied || st.Progress.IsZero() {
		return nil
	}
	idle := time.Since(st.Progress)
	if idle <= bound {
		return nil
	}
	if !st.Leader {
		held, err := store.LeaseHeld(ctx)
		if err != nil {
			return &api.NotReady{Reason: api.ReasonRedis, Err: err}
		}
		if held {
			return nil
		}
	}
	return &api.NotReady{Reason: api.ReasonStalled, Err: fmt.Errorf("%d events waiting, none applied for %s (bound %s); last error: %s",
		st.Head-st.Applied, idle.Round(time.Second), bound, st.LastError)}
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

// redisClient makes a client with local.RedisOptions: the API's has short
// timeouts, so a dead Redis is a fast 503; the projector's waits and retries.
func redisClient(url string, forAPI bool) (*redis.Client, error) {
	opt, err := local.RedisOptions(url, forAPI)
	if err != nil {
		return nil, fmt.Errorf("-redis-url / REDIS_URL: %w", err)
	}
	return redis.NewClient(opt), nil
}
