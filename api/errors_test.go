package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
)

func TestNotFound(t *testing.T) {
	t.Parallel()
	renderDeletedID, renderViewsOnly := eventstest.UUID(3), eventstest.UUID(4)
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
		eventstest.RenderCreated(projectB, renderB),
		eventstest.ShareCreated(projectB, renderB, "s2", "2026-06-05T10:00:00Z"),
		eventstest.RenderCreated(projectA, renderDeletedID),
		eventstest.ShareCreated(projectA, renderDeletedID, "s3", "2026-06-05T10:00:00Z"),
		eventstest.RenderDeleted(projectA, renderDeletedID),
		eventstest.ShareViewed(projectA, renderViewsOnly, "s4"),
	)
	srv := w.serve(api.Config{})

	t.Run("uppercase id of a render of the key's project", func(t *testing.T) {
		if got := len(get(t, srv, strings.ToUpper(renderA), liveKey).shares(t)); got != 1 {
			t.Errorf("got %d shares, want 1", got)
		}
	})

	unknown := get(t, srv, eventstest.UUID(1), liveKey)
	unknown.wantError(t, http.StatusNotFound, "not_found")
	tests := []struct{ name, id string }{
		{"malformed id", "not-a-uuid"},
		{"id one digit short", renderA[:35]},
		{"id with a non-hex digit", "5b3e8f20-9a4d-4c6b-8e2f-1d7a6b5c4e3g"},
		{"id without dashes", strings.ReplaceAll(renderA, "-", "") + "----"},
		{"a render of another project", renderB},
		{"a deleted render", renderDeletedID},
		{"a render known only from views", renderViewsOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, srv, tt.id, liveKey)
			r.wantError(t, http.StatusNotFound, "not_found")
			if !bytes.Equal(r.body, unknown.body) {
				t.Errorf("body %s, want the unknown render's %s", r.body, unknown.body)
			}
		})
	}

	for _, path := range []string{"/", "/v1", "/v1/renders", "/v1/renders/" + renderA,
		sharesPath(renderA) + "/", sharesPath(renderA) + "/extra", "/v2/renders/" + renderA + "/shares"} {
		t.Run("unknown route "+path, func(t *testing.T) {
			request(t, srv, http.MethodGet, path, nil).wantError(t, http.StatusNotFound, "not_found")
			request(t, srv, http.MethodGet, path, nil, "Authorization: Bearer "+liveKey).wantError(t, http.StatusNotFound, "not_found")
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA))
	srv := w.serve(api.Config{})
	tests := []struct {
		name, method, path string
		body               io.Reader
	}{
		{"POST", http.MethodPost, sharesPath(renderA), nil},
		{"POST with a JSON body", http.MethodPost, sharesPath(renderA), strings.NewReader(`{"channel":"link"}`)},
		{"PUT", http.MethodPut, sharesPath(renderA), nil},
		{"DELETE", http.MethodDelete, sharesPath(renderA), nil},
		{"PATCH", http.MethodPatch, sharesPath(renderA), nil},
		{"DELETE of an unknown render", http.MethodDelete, sharesPath(eventstest.UUID(1)), nil},
		{"POST to healthz", http.MethodPost, "/healthz", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(t, srv, tt.method, tt.path, tt.body, "Authorization: Bearer "+liveKey)
			r.wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
			allow := strings.Split(r.header.Get("Allow"), ",")
			for i := range allow {
				allow[i] = strings.TrimSpace(allow[i])
			}
			if !contains(allow, "GET") || contains(allow, tt.method) {
				t.Errorf("Allow = %q, want GET and not %s", r.header.Get("Allow"), tt.method)
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestGetWithBody(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA))
	srv := w.serve(api.Config{})
	tests := []struct {
		name   string
		body   io.Reader
		status int
	}{
		{"an empty body is no body", strings.NewReader(""), http.StatusOK},
		{"a body with a length", strings.NewReader(`{"x":1}`), http.StatusBadRequest},
		// io.MultiReader hides the length: the client sends it chunked.
		{"a chunked body", io.MultiReader(strings.NewReader(`{"x":1}`)), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(t, srv, http.MethodGet, sharesPath(renderA), tt.body, "Authorization: Bearer "+liveKey)
			if tt.status == http.StatusOK {
				r.shares(t)
				return
			}
			r.wantError(t, tt.status, "bad_request")
		})
	}
}

// wantUnavailable checks a 503 with the envelope and a Retry-After in
// seconds.
func wantUnavailable(t testing.TB, r reply) {
	t.Helper()
	r.wantError(t, http.StatusServiceUnavailable, "unavailable")
	if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n <= 0 {
		t.Errorf("Retry-After = %q, want a positive number of seconds", r.header.Get("Retry-After"))
	}
}

// TestUnavailableWithoutActiveGeneration is the state while the projector
// rebuilds from zero after Redis lost its data: every authenticated
// request is a 503, never a 401 or a 404.
func TestUnavailableWithoutActiveGeneration(t *testing.T) {
	t.Parallel()
	w := newEmptyWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA))
	srv := w.serve(api.Config{})
	tests := []struct{ name, render, key string }{
		{"a known key and render", renderA, liveKey},
		{"a known key and an unknown render", eventstest.UUID(1), liveKey},
		{"a key that may not exist yet", renderA, unknownLiveKey},
		{"a malformed render id", "not-a-uuid", liveKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantUnavailable(t, get(t, srv, tt.render, tt.key))
		})
	}
	t.Run("answers at once when a generation becomes active", func(t *testing.T) {
		if ok, err := w.store.Activate(t.Context(), w.gen, ""); err != nil || !ok {
			t.Fatalf("activate: ok=%v err=%v", ok, err)
		}
		r := get(t, srv, renderA, liveKey) // the 503 above was not cached
		r.shares(t)
	})
}

// TestUnavailableWhenRedisDown pauses and then empties Redis under a
// server whose Redis client is configured as cmd/sharesd's API client.
func TestUnavailableWhenRedisDown(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	srv := w.serve(api.Config{})
	get(t, srv, renderA, liveKey).shares(t)

	tests := []struct{ name, render, key string }{
		{"a known key and render", renderA, liveKey},
		{"a key that is not cached", renderA, unknownLiveKey},
		{"an unknown render", eventstest.UUID(1), liveKey},
	}
	check := func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				start := time.Now()
				r := get(t, srv, tt.render, tt.key)
				if d := time.Since(start); d > 1500*time.Millisecond {
					t.Errorf("answered after %v, want within 1.5s", d)
				}
				wantUnavailable(t, r)
			})
		}
	}

	t.Run("paused", func(t *testing.T) {
		w.redis.Pause(t)
		resumed := false
		defer func() {
			if !resumed {
				w.redis.Resume(t)
			}
		}()
		check(t)
		w.redis.Resume(t)
		resumed = true
		polltest.WaitFor(t, 5*time.Second, func() error {
			if r := get(t, srv, renderA, liveKey); r.status != http.StatusOK {
				return fmt.Errorf("after resume: status %d, want 200", r.status)
			}
			return nil
		})
	})
	t.Run("restarted empty", func(t *testing.T) {
		w.redis.Restart(t)
		check(t)
	})
}
