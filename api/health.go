package api

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Reasons /readyz gives for a 503, in the "reason" of its body. Each has a
// fixed message (readyMessage): neither ever holds an address or an error.
const (
	ReasonRedis        = "redis_unavailable"    // Redis does not answer
	ReasonNATS         = "nats_unavailable"     // the projector is not connected to NATS
	ReasonNoGeneration = "no_active_generation" // a rebuild from zero is in progress
	ReasonStalled      = "projector_stalled"    // events wait and none was applied for a while
	ReasonNotReady     = "not_ready"            // any other error of Config.Ready
)

var readyMessage = map[string]string{
	ReasonRedis:        "the read model's Redis does not answer",
	ReasonNATS:         "the projector is not connected to NATS",
	ReasonNoGeneration: "no generation of the read model is active yet: a rebuild from the stream is in progress",
	ReasonStalled:      "events are waiting and the projector has applied none for longer than its readiness bound",
	ReasonNotReady:     "the process cannot serve yet",
}

// NotReady is the error Config.Ready returns to say why the process cannot
// serve: Reason (one of the Reason constants) is sent, Err only logged.
type NotReady struct {
	Reason string
	Err    error
}

func (e *NotReady) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *NotReady) Unwrap() error { return e.Err }

// handleReadyz answers 200 when ready reports nil, else 503 with a reason
// code and its fixed message; the error itself is logged, never sent.
func handleReadyz(logger *slog.Logger, ready func(context.Context) error) http.Handler {
	type notReady struct {
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := ready(ctx); err != nil {
				reason := ReasonNotReady
				var nr *NotReady
				if errors.As(err, &nr) && readyMessage[nr.Reason] != "" {
					reason = nr.Reason
				}
				logger.WarnContext(ctx, "not ready", "request_id", requestID(ctx), "reason", reason, "err", err)
				w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
				writeJSON(w, http.StatusServiceUnavailable, notReady{"unavailable", reason, readyMessage[reason]})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

//go:embed openapi.yaml
var openapiSpec []byte

// OpenAPI is the API's OpenAPI 3.1 description.
func OpenAPI() []byte { return openapiSpec }

func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openapiSpec)
	})
}
