package api_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
)

// TestBodyCacheNeverStale checks that a kept body is only sent while Redis
// confirms it is current: every change of the list or of the project's share
// base is seen on the very next request, by a server with the cache and one
// without alike, and both send the same bytes.
func TestBodyCacheNeverStale(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
	)
	cached := w.serve(api.Config{ShareBase: "https://default.example"})
	uncached := w.serve(api.Config{ShareBase: "https://default.example", BodyCacheBytes: -1})

	check := func(step string, clicks int64, url string) {
		t.Helper()
		for range 2 { // the second request is served from the cache
			a, b := get(t, cached, renderA, liveKey), get(t, uncached, renderA, liveKey)
			if a.status != http.StatusOK || !bytes.Equal(a.body, b.body) {
				t.Fatalf("%s: cached server answered %d %s, uncached %d %s", step, a.status, a.body, b.status, b.body)
			}
			if a.header.Get("ETag") != b.header.Get("ETag") || a.header.Get("X-Projection-Seq") != b.header.Get("X-Projection-Seq") {
				t.Fatalf("%s: headers differ: %v vs %v", step, a.header, b.header)
			}
			s := a.shares(t)
			if len(s) != 1 || s[0].ClickCount != clicks || s[0].ShareURL != url {
				t.Fatalf("%s: %s, want clickCount %d and shareUrl %s", step, a.body, clicks, url)
			}
		}
	}
	check("initial", 0, "https://default.example/share/cks_s1")
	w.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
	check("after a view", 1, "https://default.example/share/cks_s1")
	w.apply(eventstest.ProjectUpdated(projectA, "https://share.example.com"))
	check("after project.updated", 1, "https://share.example.com/share/cks_s1")
	w.apply(eventstest.ShareViewed(projectA, renderA, "s1"), eventstest.ShareViewed(projectA, renderA, "s1"))
	check("after two more views", 3, "https://share.example.com/share/cks_s1")

	// A client's current ETag still gets 304 while a body is kept.
	tag := get(t, cached, renderA, liveKey).header.Get("ETag")
	if r := get(t, cached, renderA, liveKey, "If-None-Match: "+tag); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Fatalf("If-None-Match with the current ETag: %d %q, want 304 and no body", r.status, r.body)
	}
	// And a stale ETag gets the new body, not the kept one.
	w.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
	r := get(t, cached, renderA, liveKey, "If-None-Match: "+tag)
	if s := r.shares(t); s[0].ClickCount != 4 {
		t.Fatalf("with a stale ETag: %s, want clickCount 4", r.body)
	}
}
