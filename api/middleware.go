package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
)

type ctxKey struct{}

// reqInfo is what the middleware learns of a request, put in its context
// once by withRequestID and filled in as the request goes down: its id, its
// route's name, the key's project.
type reqInfo struct {
	id      string
	route   string
	project string
}

func infoFrom(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// withRequestID gives each request an id, taken from a sane X-Request-Id
// header or made up, echoed in the response and put on every log line.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &reqInfo{id: id})))
	})
}

func saneID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func requestID(ctx context.Context) string { return infoFrom(ctx).id }

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// withLogging logs one line per request (never the Authorization header)
// and records its duration by route template and status.
func withLogging(logger *slog.Logger, metrics *Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		info := infoFrom(r.Context())
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		route := info.route
		if route == "" {
			route = "unmatched"
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		metrics.observe(route, sw.status, d)
		level := slog.LevelDebug
		if sw.status >= 500 {
			level = slog.LevelWarn
		}
		if logger.Enabled(r.Context(), level) {
			logger.Log(r.Context(), level, "request", "request_id", info.id, "method", r.Method,
				"route", route, "status", sw.status, "duration_ms", float64(d.Microseconds())/1000)
		}
	})
}

// nameRoute records the matched route's name for withLogging: a bounded
// label. It runs as router middleware, so only for matched routes.
func nameRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cur := mux.CurrentRoute(r); cur != nil {
			infoFrom(r.Context()).route = cur.GetName()
		}
		next.ServeHTTP(w, r)
	})
}

// noBody refuses a GET or HEAD that carries a body. Other methods go on to
// the router, which answers 405 whatever their body.
func noBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bodyless := r.Method == http.MethodGet || r.Method == http.MethodHead
		if bodyless && (r.ContentLength > 0 || len(r.TransferEncoding) > 0) {
			writeError(w, codeBadRequest, "requests to this API take no body")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// onlyCleanPaths answers 404 to a path that is not in its clean form (an
// empty, "." or ".." segment) or that encodes a separator or a dot (%2F,
// %5C, %2E), so that no such path reaches a route, is redirected, or is
// read one way here and another way by a proxy.
func onlyCleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cleanPath(r.URL.EscapedPath()) {
			writeError(w, codeNotFound, "no such route")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." || seg == "" && len(p) > 1 {
			return false
		}
	}
	for i := 0; i+2 < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		switch p[i+1 : i+3] {
		case "2f", "2F", "5c", "5C", "2e", "2E":
			return false
		}
	}
	return true
}
