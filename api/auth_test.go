package api_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
)

// Keys of the authentication tests besides liveKey and testKey. None is
// ever printed.
const (
	revokedKey     = "ck_live_revoked_key_of_project_a"
	liveNamedTest  = "ck_live_minted_for_the_test_env" // environment "test" under a live prefix
	testNamedLive  = "ck_test_minted_for_the_live_env" // environment "live" under a test prefix
	unknownLiveKey = "ck_live_never_created_anywhere"
)

func authWorld(t *testing.T) *world {
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"),
		eventstest.APIKeyCreated(projectA, "key_test", testKey, "test"),
		eventstest.APIKeyCreated(projectA, "key_revoked", revokedKey, "live"),
		eventstest.APIKeyRevoked(projectA, "key_revoked"),
		eventstest.APIKeyCreated(projectA, "key_live_named_test", liveNamedTest, "test"),
		eventstest.APIKeyCreated(projectA, "key_test_named_live", testNamedLive, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
	)
	return w
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	w := authWorld(t)
	live := w.serve(api.Config{Env: "live"})
	test := w.serve(api.Config{Env: "test"})
	basic := base64.StdEncoding.EncodeToString([]byte(liveKey + ":"))

	tests := []struct {
		name   string
		srv    *httptest.Server
		render string
		auth   string // the Authorization header, "" for none
		status int
	}{
		{"a live key on a live server", live, renderA, "Bearer " + liveKey, 200},
		{"the scheme is case-insensitive", live, renderA, "bearer " + liveKey, 200},
		{"a test key on a test server", test, renderA, "Bearer " + testKey, 200},

		{"no Authorization header", live, renderA, "", 401},
		{"Basic scheme", live, renderA, "Basic " + basic, 401},
		{"key without a scheme", live, renderA, liveKey, 401},
		{"Bearer without a token", live, renderA, "Bearer", 401},
		{"Bearer and a space", live, renderA, "Bearer ", 401},
		{"Bearer with two tokens", live, renderA, "Bearer " + liveKey + " " + liveKey, 401},
		{"the prefix alone", live, renderA, "Bearer ck_live_", 401},
		{"an unknown key", live, renderA, "Bearer " + unknownLiveKey, 401},
		{"an unknown key on an unknown render", live, eventstest.UUID(1), "Bearer " + unknownLiveKey, 401},
		{"a key in other case", live, renderA, "Bearer " + strings.ToUpper(liveKey), 401},
		{"a revoked key", live, renderA, "Bearer " + revokedKey, 401},
		{"a ck_test_ key on a live server", live, renderA, "Bearer " + testKey, 401},
		{"a test key minted under ck_live_", live, renderA, "Bearer " + liveNamedTest, 401},
		{"a ck_live_ key on a test server", test, renderA, "Bearer " + liveKey, 401},
		{"a live key minted under ck_test_", test, renderA, "Bearer " + testNamedLive, 401},
	}
	var first []byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header []string
			if tt.auth != "" {
				header = append(header, "Authorization: "+tt.auth)
			}
			r := request(t, tt.srv, http.MethodGet, sharesPath(tt.render), nil, header...)
			if tt.status == 200 {
				if got := len(r.shares(t)); got != 1 {
					t.Errorf("got %d shares, want 1", got)
				}
				return
			}
			r.wantError(t, http.StatusUnauthorized, "unauthorized")
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want Bearer …", got)
			}
			if first == nil {
				first = r.body
			} else if !bytes.Equal(r.body, first) {
				t.Errorf("401 body %s differs from the first 401's %s", r.body, first)
			}
		})
	}
}

// TestKeyCache checks that the cache of key lookups lets a revocation and
// a creation through within a second of their being applied.
func TestKeyCache(t *testing.T) {
	t.Parallel()
	const newKey = "ck_live_created_while_serving"
	w := authWorld(t)
	srv := w.serve(api.Config{})

	t.Run("a revoked key is refused within 1s", func(t *testing.T) {
		if r := get(t, srv, renderA, liveKey); r.status != 200 {
			t.Fatalf("before revocation: status = %d, want 200", r.status)
		}
		w.apply(eventstest.APIKeyRevoked(projectA, "key_live"))
		applied := time.Now()
		polltest.WaitFor(t, time.Second, func() error {
			if r := get(t, srv, renderA, liveKey); r.status != http.StatusUnauthorized {
				return fmt.Errorf("%v after apikey.revoked: status %d, want 401", time.Since(applied), r.status)
			}
			return nil
		})
		t.Logf("refused %v after apikey.revoked", time.Since(applied).Round(time.Millisecond))
	})
	t.Run("a new key is accepted within 1s", func(t *testing.T) {
		if r := get(t, srv, renderA, newKey); r.status != http.StatusUnauthorized {
			t.Fatalf("before creation: status = %d, want 401", r.status) // also caches "not found"
		}
		w.apply(eventstest.APIKeyCreated(projectA, "key_new", newKey, "live"))
		applied := time.Now()
		polltest.WaitFor(t, time.Second, func() error {
			if r := get(t, srv, renderA, newKey); r.status != http.StatusOK {
				return fmt.Errorf("%v after apikey.created: status %d, want 200", time.Since(applied), r.status)
			}
			return nil
		})
		t.Logf("accepted %v after apikey.created", time.Since(applied).Round(time.Millisecond))
	})
}
