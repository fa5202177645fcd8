package api

import (
	"errors"
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
func handleListShares(logger *slog.Logger, store Store, positions *Positions, fresh *freshness, cfg Config) http.Handler {
	tag := configTag(cfg)
	bodies := newBodyCache(cfg.BodyCacheBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id, minSeq, ok := listArgs(w, r)
		if !ok {
			return
		}
		inm := parseIfNoneMatch(r.Header.Get("If-None-Match"), tag)
		project := projectFrom(ctx)
		key := project + "/" + id
		cached, hit := bodies.get(key)
		if hit && minSeq <= cached.seq && fresh.current(cached.stamp) {
			answer(w, inm, tag, cached)
			return
		}
		st, live := fresh.take(project, id)
		// Ask Redis whether what the client has, or else what was last
		// rendered here, is current: then no share is read.
		ask := inm.newest
		if ask == nil && hit {
			ask = &cached.v
		}
		list, err := readList(r, store, positions, cfg, id, ask, minSeq)
		if err != nil {
			listFailed(w, r, logger, id, "list shares", err)
			return
		}
		got := cachedBody{v: readmodel.Versions{Ver: list.Ver, ProjectVer: list.ProjectVer}, seq: list.Seq, stamp: st}
		switch {
		case inm.matches(got.v):
			answer(w, inm, tag, got)
			return
		case list.NotModified: // the versions asked were the cached body's
			got.body = cached.body
			if live {
				bodies.restamp(key, got)
			}
		default:
			bp := bufs.Get().(*[]byte)
			defer bufs.Put(bp)
			if got.body, err = appendBody((*bp)[:0], list, cfg.ShareBase); err != nil {
				listFailed(w, r, logger, id, "render shares", err)
				return
			}
			*bp = got.body
			if live {
				bodies.put(key, got)
			}
		}
		answer(w, inm, tag, got)
	})
}

// answer sends b: 304 when the client has its versions, else its body.
func answer(w http.ResponseWriter, inm ifNoneMatch, tag string, b cachedBody) {
	h := w.Header()
	h.Set("ETag", etag(b.v, tag))
	h.Set("X-Projection-Seq", strconv.FormatUint(b.seq, 10))
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization")
	if inm.matches(b.v) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeBody(w, b.body)
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

// writeBody answers 200 with a JSON body.
func writeBody(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
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
