package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/craftkit/sharesd/api"
)

// TestReadyzSaysWhyWithoutDetails checks /readyz's 503 body: the reason
// code given by Config.Ready and that code's fixed message, never the
// error's text (which names internal addresses), which is logged instead.
func TestReadyzSaysWhyWithoutDetails(t *testing.T) {
	t.Parallel()
	cause := errors.New("dial tcp 10.1.2.3:6379: connect: connection refused")
	for _, c := range []struct {
		name   string
		err    error
		reason string
	}{
		{"redis", &api.NotReady{Reason: api.ReasonRedis, Err: cause}, "redis_unavailable"},
		{"nats", &api.NotReady{Reason: api.ReasonNATS, Err: cause}, "nats_unavailable"},
		{"no generation", &api.NotReady{Reason: api.ReasonNoGeneration}, "no_active_generation"},
		{"stalled", fmt.Errorf("wrapped: %w", &api.NotReady{Reason: api.ReasonStalled, Err: cause}), "projector_stalled"},
		{"a code of nobody's", &api.NotReady{Reason: "10.1.2.3:6379", Err: cause}, "not_ready"},
		{"a plain error", cause, "not_ready"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs strings.Builder
			logger := slog.New(slog.NewJSONHandler(&logs, nil))
			srv := httptest.NewServer(api.NewServer(logger, nil, nil, nil, api.Config{HealthOnly: true,
				Ready: func(context.Context) error { return c.err }}))
			defer srv.Close()
			r := request(t, srv, http.MethodGet, "/readyz", nil)
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
				t.Fatalf("status %d, Retry-After %q, want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
			}
			var body struct{ Status, Reason, Message string }
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("%s: %v", r.body, err)
			}
			if body.Status != "unavailable" || body.Reason != c.reason || body.Message == "" {
				t.Errorf("body %s, want status unavailable, reason %s and a message", r.body, c.reason)
			}
			if strings.Contains(string(r.body), "10.1.2.3") || strings.Contains(string(r.body), "dial") {
				t.Errorf("body %s tells the cause", r.body)
			}
			if c.err != nil && errors.Is(c.err, cause) && !strings.Contains(logs.String(), "10.1.2.3:6379: connect") {
				t.Errorf("the cause was not logged: %s", logs.String())
			}
		})
	}
}
