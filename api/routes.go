package api

import (
	"net/http"

	"github.com/gorilla/mux"
)

// allowed is the Allow header of every route: the API only reads.
const allowed = "GET, HEAD"

func addRoutes(r *mux.Router, s *server) {
	if !s.cfg.HealthOnly {
		r.Handle("/v1/renders/{id}/shares", s.authenticate(handleListShares(s.logger, s.store, s.positions, s.fresh, s.metrics, s.cfg))).
			Methods(http.MethodGet, http.MethodHead).Name("list_shares")
	}
	r.Handle("/healthz", handleHealthz()).Methods(http.MethodGet, http.MethodHead).Name("healthz")
	r.Handle("/readyz", handleReadyz(s.logger, s.cfg.Ready)).Methods(http.MethodGet, http.MethodHead).Name("readyz")
	r.Handle("/openapi.yaml", handleOpenAPI()).Methods(http.MethodGet, http.MethodHead).Name("openapi")
	if s.cfg.MetricsHandler != nil {
		r.Handle("/metrics", s.cfg.MetricsHandler).Methods(http.MethodGet, http.MethodHead).Name("metrics")
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, codeNotFound, "no such route")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, codeMethodNotAllowed, r.Method+" is not allowed here; use "+allowed)
	})
}
