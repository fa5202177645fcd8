package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// handleListShares answers GET /v1/renders/{id}/shares from one Redis round
// trip. The ETag (etag.go) changes exactly when the body would;
// If-None-Match answers 304 without reading the shares. ?minSeq=n waits
// (bounded) until the projector has applied the stream up to n.
// X-Projection-Seq is the render's applied stream sequence. Bodies are kept
// per render and sent again while Redis confirms, in the same round trip,
// that the render and its project have not changed.
func handleListShares(logger *slog.Logger, store Store, positions *Positions, cfg Config) http.Handler {
	tag := configTag(cfg)
	bodies := newBodyCache(cfg.BodyCacheBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id, minSeq, ok := listArgs(w, r)
		if !ok {
			return
		}
		inm := parseIfNoneMatch(r.Header.Get("If-None-Match"), tag)
		key := projectFrom(ctx) + "/" + id
		// Ask Redis whether what the client has, or else what was last
		// rendered here, is current: then no share is read.
		cached, hit := bodies.get(key)
		ask := inm.newest
		if ask == nil && hit {
			ask = &cached.v
		}
		list, err := readList(r, store, positions, cfg.MinSeqWait, id, ask, minSeq)
		if err != nil {
			listFailed(w, r, logger, id, "list shares", err)
			return
		}
		current := readmodel.Versions{Ver: list.Ver, ProjectVer: list.ProjectVer}
		h := w.Header()
		h.Set("ETag", etag(current, tag))
		h.Set("X-Projection-Seq", strconv.FormatUint(list.Seq, 10))
		h.Set("Cache-Control", "private, no-cache")
		h.Set("Vary", "Authorization")
		if inm.matches(current) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := cached.body // when list.NotModified: the versions asked were the cached body's
		if !list.NotModified {
			bp := bufs.Get().(*[]byte)
			defer bufs.Put(bp)
			if body, err = appendBody((*bp)[:0], list, cfg.ShareBase); err != nil {
				h.Del("ETag")
				listFailed(w, r, logger, id, "render shares", err)
				return
			}
			*bp = body
			bodies.put(key, current, body)
		}
		writeBody(w, body)
	})
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
// behind minSeq and the projector gets there within wait.
func readList(r *http.Request, store Store, positions *Positions, wait time.Duration, id string, have *readmodel.Versions, minSeq uint64) (*readmodel.List, error) {
	ctx := r.Context()
	project := projectFrom(ctx)
	list, err := store.List(ctx, project, id, have)
	if err == nil && minSeq > list.Seq && positions != nil && positions.Wait(ctx, minSeq, wait) {
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
