// Package api is the HTTP API of sharesd: GET /v1/renders/{id}/shares
// answered from the Redis read model, plus health, metrics and the OpenAPI
// description. It imports projector/readmodel, never the projector.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// Config configures the API. Zero durations take the defaults.
type Config struct {
	Env        string        // events.EnvLive or EnvTest: the keys this server accepts
	ShareBase  string        // share base of projects that set none, no trailing slash
	MinSeqWait time.Duration // longest ?minSeq wait (default 2s)
	// KeyCacheSize bounds the key lookups kept while the announcements
	// are followed (default 10000; see Server.Follow).
	KeyCacheSize int
	// BodyCacheBytes bounds the rendered bodies kept for reuse while their
	// render is unchanged (default 64 MiB; negative disables).
	BodyCacheBytes int
	// Partitions is the number of partitions the projectors share the
	// stream in (default 1): ?minSeq waits for the render's own.
	Partitions int

	// Ready reports whether the process can serve (for /readyz); nil means
	// always ready.
	Ready func(ctx context.Context) error
	// MetricsHandler serves /metrics when set.
	MetricsHandler http.Handler
	// HealthOnly serves only health, metrics and the OpenAPI description:
	// the HTTP side of a projector-only process.
	HealthOnly bool
}

func (c *Config) defaults() {
	if c.Env == "" {
		c.Env = events.EnvLive
	}
	if c.MinSeqWait <= 0 {
		c.MinSeqWait = 2 * time.Second
	}
	if c.Partitions <= 0 {
		c.Partitions = 1
	}
	if c.KeyCacheSize <= 0 {
		c.KeyCacheSize = 10000
	}
	switch {
	case c.BodyCacheBytes == 0:
		c.BodyCacheBytes = 64 << 20
	case c.BodyCacheBytes < 0:
		c.BodyCacheBytes = 0
	}
}

// Store is what the API reads: *readmodel.Store.
type Store interface {
	List(ctx context.Context, projectID, renderID string, have *readmodel.Versions) (*readmodel.List, error)
	Key(ctx context.Context, hash string) (readmodel.Key, error)
}

type server struct {
	logger    *slog.Logger
	store     Store
	positions *Positions
	keys      *keyCache
	fresh     *freshness
	metrics   *Metrics
	cfg       Config
}

// Server is the API's handler.
type Server struct {
	http.Handler
	s *server
}

// NewServer returns the API's handler, recording in metrics (see
// NewMetrics). positions may be nil, in which case ?minSeq reads once
// without waiting; metrics may be nil. Until it is given the
// announcements (see Follow) it asks Redis for every key and every list.
func NewServer(logger *slog.Logger, store Store, positions *Positions, metrics *Metrics, cfg Config) *Server {
	cfg.defaults()
	s := &server{logger: logger, store: store, positions: positions, cfg: cfg,
		keys: newKeyCache(store, cfg.KeyCacheSize), fresh: new(freshness), metrics: metrics}
	// Paths are matched as sent: mux neither cleans them (with a 301) nor
	// decodes %2F into a separator; onlyCleanPaths refuses the unclean.
	r := mux.NewRouter().SkipClean(true).UseEncodedPath()
	addRoutes(r, s)
	r.Use(nameRoute)
	// Wrapped from the outside: router.Use would skip 404 and 405.
	return &Server{Handler: withRequestID(withLogging(logger, metrics, onlyCleanPaths(noBody(r)))), s: s}
}

// Follow takes in what readmodel.Store.FollowApplied reports: it empties
// the key cache when keys may have changed, makes the kept bodies of the
// renders and projects announced changed old (all of them after a switch or
// when the announcements may have been missed), then moves positions: an
// announcement's partitions, or all of them. Pass it to FollowApplied,
// which calls it from one goroutine.
func (srv *Server) Follow(a readmodel.AppliedPos) {
	s := srv.s
	s.keys.follow(a)
	s.fresh.follow(a)
	switch {
	case s.positions == nil:
	case a.Announced && a.Parts != nil:
		for _, p := range a.Parts {
			if p < s.cfg.Partitions {
				s.positions.SetPart(p, a.Seq)
			}
		}
	default:
		s.positions.Set(a.Seq)
	}
}
