package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gorilla/mux"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// handleListShares answers GET /v1/renders/{id}/shares. The ETag (etag.go)
// changes exactly when the body would; If-None-Match answers 304 without
// reading the shares. ?minSeq=n waits (bounded) until the projector has
// applied the stream up to n in the render's partition. X-Projection-Seq is
// the render's applied stream sequence. Bodies are kept per render: one is
// sent from memory while no announcement since it was read could have
// changed it (see freshness) and it satisfies minSeq; otherwise Redis is
// asked, in one round trip, whether its versions are current, and the
// shares are read and rendered only when they are not.
func handleListShares(logger *slog.Logger, store Store, positions *Positions, fresh *freshness, metrics *Metrics, cfg Config) http.Handler {
	return &lister{logger: logger, store: store, positions: positions, fresh: fresh, metrics: metrics, cfg: cfg,
		tag: configTag(cfg), fixed: newFixedHeaders(), bodies: newBodyCache(cfg.BodyCacheBytes)}
}

// lister is the list handler and what it needs.
type lister struct {
	logger    *slog.Logger
	store     Store
	positions *Positions
	fresh     *freshness
	metrics   *Metrics
	cfg       Config
	tag       string
	fixed     fixedHeaders
	bodies    *bodyCache
}

func (l *lister) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, minSeq, ok := listArgs(w, r)
	if !ok {
		return
	}
	inm := parseIfNoneMatch(r.Header.Get("If-None-Match"), l.tag)
	key := projectFrom(r.Context()) + "/" + id
	cached, hit := l.bodies.get(key)
	if hit && minSeq <= cached.seq && l.fresh.current(cached.stamp) {
		l.metrics.listed(true)
		answer(w, inm, l.fixed, cached)
		return
	}
	got, bp, err := l.fromRedis(r, id, key, minSeq, inm, cached)
	if bp != nil {
		defer bufs.Put(bp)
	}
	if err != nil {
		listFailed(w, r, l.logger, id, "list shares", err)
		return
	}
	l.metrics.listed(false)
	answer(w, inm, l.fixed, got)
}

// fromRedis reads the list (see readList) and returns what to answer: the
// kept body cached when Redis confirms its versions, else the body read
// and rendered, which is kept; nothing when the client's If-None-Match
// holds the versions (a 304). What it keeps or confirms is stamped (see
// freshness) as of before the read, and only while the announcements are
// followed. A rendered body is in *bp: put it back in bufs once sent.
func (l *lister) fromRedis(r *http.Request, id, key string, minSeq uint64, inm ifNoneMatch, cached cachedBody) (cachedBody, *[]byte, error) {
	st, live := l.fresh.take(projectFrom(r.Context()), id)
	// Ask Redis whether what the client has, or else what was last
	// rendered here, is current: then no share is read.
	ask := inm.newest
	if ask == nil && cached.body != nil {
		ask = &cached.v
	}
	list, err := readList(r, l.store, l.positions, l.cfg, id, ask, minSeq)
	if err != nil {
		return cachedBody{}, nil, err
	}
	got := cachedBody{v: list.Versions(), seq: list.Seq, stamp: st}
	var bp *[]byte
	switch {
	case cached.body != nil && cached.v == got.v: // NotModified, or the client's versions are the kept body's
		got.body = cached.body
	case inm.matches(got.v): // a 304; no body to keep
		got.hdr = newHeaders(got, l.tag)
		return got, nil, nil
	case list.NotModified: // cannot happen: what was asked is one of the two above
		return cachedBody{}, nil, errors.New("list not modified, and neither the kept body nor the client's")
	default:
		bp = bufs.Get().(*[]byte)
		if got.body, err = appendBody((*bp)[:0], list, l.cfg.ShareBase); err != nil {
			return cachedBody{}, bp, fmt.Errorf("render shares: %w", err)
		}
		*bp = got.body
	}
	got.hdr = newHeaders(got, l.tag)
	switch {
	case !live:
	case bp == nil:
		l.bodies.restamp(key, got)
	default:
		l.bodies.put(key, got)
	}
	return got, bp, nil
}

// headers are the header values of one answer. A kept body's are built
// once and shared by every response that sends it: each value slice has
// capacity 1, so nothing can append into another response's.
type headers struct {
	etag, seq, length []string
}

func newHeaders(b cachedBody, tag string) *headers {
	return &headers{etag: []string{etag(b.v, tag)}, seq: []string{strconv.FormatUint(b.seq, 10)},
		length: []string{strconv.Itoa(len(b.body))}}
}

// fixedHeaders are the header values every list answer shares.
type fixedHeaders struct {
	cacheControl, vary, contentType []string
}

func newFixedHeaders() fixedHeaders {
	return fixedHeaders{cacheControl: []string{"private, no-cache"}, vary: []string{"Authorization"},
		contentType: []string{"application/json"}}
}

// answer sends b: 304 when the client has its versions, else its body.
// Header keys are written in canonical form, so the values go in as they
// are.
func answer(w http.ResponseWriter, inm ifNoneMatch, fixed fixedHeaders, b cachedBody) {
	h := w.Header()
	h["Etag"], h["X-Projection-Seq"] = b.hdr.etag, b.hdr.seq
	h["Cache-Control"], h["Vary"] = fixed.cacheControl, fixed.vary
	if inm.matches(b.v) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"], h["Content-Length"] = fixed.contentType, b.hdr.length
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.body)
}

// listFailed answers 404 for readmodel.ErrNotFound, else logs err as what
// failed and answers 503.
func listFailed(w http.ResponseWriter, r *http.Request, logger *slog.Logger, id, what string, err error) {
	if errors.Is(err, readmodel.ErrNotFound) {
		writeError(w, codeNotFound, "render not found")
		return
	}
	ctx := r.Context()
	logger.ErrorContext(ctx, what, "request_id", requestID(ctx), "render_id", id, "err", err)
	unavailable(w)
}

// listArgs reads the render id and ?minSeq of a list request, or answers
// the request itself (404, 400) and returns false.
func listArgs(w http.ResponseWriter, r *http.Request) (id string, minSeq uint64, ok bool) {
	id = mux.Vars(r)["id"]
	if !events.IsUUID(id) {
		writeError(w, codeNotFound, "render not found")
		return "", 0, false
	}
	minSeq, err := parseMinSeq(r)
	if err != nil {
		writeError(w, codeBadRequest, err.Error())
		return "", 0, false
	}
	return strings.ToLower(id), minSeq, true // no copy when it is already lowercase
}

// readList reads the list in the key's project, once more when it is
// behind minSeq and the projector gets there, in the render's partition,
// within cfg.MinSeqWait.
func readList(r *http.Request, store Store, positions *Positions, cfg Config, id string, have *readmodel.Versions, minSeq uint64) (*readmodel.List, error) {
	ctx := r.Context()
	project := projectFrom(ctx)
	list, err := store.List(ctx, project, id, have)
	if err == nil && minSeq > list.Seq && positions != nil &&
		positions.Wait(ctx, events.PartitionOf(id, cfg.Partitions), minSeq, cfg.MinSeqWait) {
		list, err = store.List(ctx, project, id, have)
	}
	return list, err
}

// appendBody appends the response body {"shares":[…]}.
func appendBody(dst []byte, list *readmodel.List, defaultBase string) ([]byte, error) {
	dst, err := appendShares(append(dst, `{"shares":`...), list, defaultBase)
	if err != nil {
		return dst, err
	}
	return append(dst, "}\n"...), nil
}

func unavailable(w http.ResponseWriter) {
	writeError(w, codeUnavailable, "shares are temporarily unavailable; retry shortly")
}

func parseMinSeq(r *http.Request) (uint64, error) {
	if r.URL.RawQuery == "" {
		return 0, nil
	}
	v := r.URL.Query().Get("minSeq")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errors.New("minSeq: want a stream sequence (a non-negative integer), got " + strconv.Quote(v))
	}
	return n, nil
}
