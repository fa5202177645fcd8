package api

import (
	"errors"
	"hash/fnv"
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

// handleListShares answers GET /v1/renders/{id}/shares from one Redis round
// trip. The ETag is the render's list version and its project's share-base
// version (plus a fingerprint of this server's configuration), so it changes
// exactly when the body would; If-None-Match answers 304 without reading the
// shares. ?minSeq=n waits (bounded) until the projector has applied the
// stream up to n. X-Projection-Seq is the render's applied stream sequence.
// Bodies are kept per render and sent again while Redis confirms, in the
// same round trip, that the render and its project have not changed.
func handleListShares(logger *slog.Logger, store Store, positions *Positions, cfg Config) http.Handler {
	tag := configTag(cfg)
	bodies := newBodyCache(cfg.BodyCacheBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := mux.Vars(r)["id"]
		if !events.IsUUID(id) {
			writeError(w, codeNotFound, "render not found")
			return
		}
		id = strings.ToLower(id) // no copy when it is already lowercase
		minSeq, err := parseMinSeq(r)
		if err != nil {
			writeError(w, codeBadRequest, err.Error())
			return
		}
		inm := r.Header.Get("If-None-Match")
		client, star := parseIfNoneMatch(inm, tag)
		project := projectFrom(ctx)
		key := project + "/" + id
		// Ask Redis whether what the client has, or else what was last
		// rendered here, is current: then no share is read.
		cached, hit := bodies.get(key)
		ask := client
		if ask == nil && hit {
			ask = &cached.v
		}
		list, err := store.List(ctx, project, id, ask)
		if err == nil && minSeq > list.Seq && positions != nil {
			if positions.Wait(ctx, minSeq, cfg.MinSeqWait) {
				list, err = store.List(ctx, project, id, ask)
			}
		}
		switch {
		case errors.Is(err, readmodel.ErrNotFound):
			writeError(w, codeNotFound, "render not found")
			return
		case err != nil:
			logger.ErrorContext(ctx, "list shares", "request_id", requestID(ctx), "render_id", id, "err", err)
			unavailable(w)
			return
		}
		current := readmodel.Versions{Ver: list.Ver, ProjectVer: list.ProjectVer}
		h := w.Header()
		h.Set("ETag", etag(list.Ver, list.ProjectVer, tag))
		h.Set("X-Projection-Seq", strconv.FormatUint(list.Seq, 10))
		h.Set("Cache-Control", "private, no-cache")
		h.Set("Vary", "Authorization")
		if star || client != nil && anyTagIs(inm, tag, current) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		var body []byte
		if list.NotModified { // the versions asked were the cached body's
			body = cached.body
		} else {
			bp := bufs.Get().(*[]byte)
			defer bufs.Put(bp)
			body = append((*bp)[:0], `{"shares":`...)
			body, err = appendShares(body, list, cfg.ShareBase)
			if err != nil {
				h.Del("ETag")
				logger.ErrorContext(ctx, "render shares", "request_id", requestID(ctx), "render_id", id, "err", err)
				unavailable(w)
				return
			}
			body = append(body, "}\n"...)
			*bp = body
			bodies.put(key, current, body)
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

func unavailable(w http.ResponseWriter) {
	writeError(w, codeUnavailable, "shares are temporarily unavailable; retry shortly")
}

// configTag fingerprints what else shapes the body: the default share base.
func configTag(cfg Config) string {
	h := fnv.New32a()
	h.Write([]byte(cfg.ShareBase))
	return strconv.FormatUint(uint64(h.Sum32()), 36)
}

func etag(ver, projectVer uint64, tag string) string {
	return `"` + strconv.FormatUint(ver, 10) + "." + strconv.FormatUint(projectVer, 10) + "." + tag + `"`
}

// parseIfNoneMatch finds, among the entity tags of an If-None-Match header,
// the newest ETag of ours made with this configuration (the one most likely
// current, which Redis is asked to confirm), and reports whether it is "*".
func parseIfNoneMatch(h, tag string) (*readmodel.Versions, bool) {
	if h == "" {
		return nil, false
	}
	if strings.TrimSpace(h) == "*" {
		return &readmodel.Versions{Any: true}, true
	}
	var newest *readmodel.Versions
	for rest := h; rest != ""; {
		var t string
		t, rest, _ = strings.Cut(rest, ",")
		if v, ok := parseETag(t, tag); ok && (newest == nil || v.Ver > newest.Ver ||
			v.Ver == newest.Ver && v.ProjectVer > newest.ProjectVer) {
			newest = &v
		}
	}
	return newest, false
}

// anyTagIs reports whether any entity tag of an If-None-Match header, weak
// or strong, is our ETag of v.
func anyTagIs(h, tag string, v readmodel.Versions) bool {
	for rest := h; rest != ""; {
		var t string
		t, rest, _ = strings.Cut(rest, ",")
		if got, ok := parseETag(t, tag); ok && got.Ver == v.Ver && got.ProjectVer == v.ProjectVer {
			return true
		}
	}
	return false
}

// parseETag reads one entity tag, [W/]"ver.projectVer.tag", made by etag
// with this configuration's tag; anything else is not ours.
func parseETag(t, tag string) (readmodel.Versions, bool) {
	t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
	if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' {
		return readmodel.Versions{}, false
	}
	ver, rest, ok1 := strings.Cut(t[1:len(t)-1], ".")
	pver, got, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || got != tag {
		return readmodel.Versions{}, false
	}
	v, err1 := strconv.ParseUint(ver, 10, 64)
	pv, err2 := strconv.ParseUint(pver, 10, 64)
	return readmodel.Versions{Ver: v, ProjectVer: pv}, err1 == nil && err2 == nil
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
