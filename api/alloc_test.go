package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
)

// sizedWorld holds renders of each size in sizes, render i of eventstest.UUID(size),
// with a view on every share and every tenth share revoked.
func sizedWorld(t testing.TB, sizes ...int) *world {
	t.Helper()
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"))
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range sizes {
		render := eventstest.UUID(n)
		evs := []eventstest.Event{eventstest.RenderCreated(projectA, render)}
		for i := range n {
			id := fmt.Sprintf("share-%05d", i)
			evs = append(evs,
				eventstest.ShareCreated(projectA, render, id, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339)).
					With("message", "Here is your signed agreement.").With("expiresAt", "2026-12-31T23:59:59Z"),
				eventstest.ShareViewed(projectA, render, id))
			if i%10 == 0 {
				evs = append(evs, eventstest.ShareRevoked(projectA, render, id, "2026-06-06T00:00:00Z", "revoked_by_partner"))
			}
		}
		for len(evs) > 0 {
			k := min(len(evs), 2000)
			w.apply(evs[:k]...)
			evs = evs[k:]
		}
	}
	return w
}

// listRequest is a GET of render's list, to serve in process.
func listRequest(render string, header ...string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, sharesPath(render), nil)
	req.Header.Set("Authorization", "Bearer "+liveKey)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// TestListAllocations checks that a request allocates about as often for a
// render of 1000 shares as for one of 10: the work per share allocates
// nothing, only the body grows. It does not run in parallel:
// testing.AllocsPerRun counts every goroutine's allocations.
func TestListAllocations(t *testing.T) {
	// The large render first, so that both renders' sequences have as many
	// digits: strconv formats numbers below 100 without allocating.
	w := sizedWorld(t, 1000, 10)
	h := w.handler(api.NewPositions(), api.Config{})
	allocs := func(render string, status int, header ...string) float64 {
		req := listRequest(render, header...)
		serve := func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != status {
				t.Fatalf("status %d, want %d", rec.Code, status)
			}
		}
		serve() // warm the key cache, the generation and the buffer pool
		return testing.AllocsPerRun(50, serve)
	}
	small, large := allocs(eventstest.UUID(10), 200), allocs(eventstest.UUID(1000), 200)
	t.Logf("allocations per request: %.0f for 10 shares, %.0f for 1000 shares", small, large)
	if large > 2*small {
		t.Errorf("allocations per request: %.0f for 1000 shares, more than twice the %.0f for 10", large, small)
	}

	tag := func(render string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, listRequest(render))
		return rec.Header().Get("ETag")
	}
	small304 := allocs(eventstest.UUID(10), 304, "If-None-Match", tag(eventstest.UUID(10)))
	large304 := allocs(eventstest.UUID(1000), 304, "If-None-Match", tag(eventstest.UUID(1000)))
	t.Logf("allocations per 304: %.0f for 10 shares, %.0f for 1000 shares", small304, large304)
	if large304 > small304+1 {
		t.Errorf("allocations per 304: %.0f for 1000 shares, want about the %.0f for 10: a 304 reads no shares", large304, small304)
	}
}

// TestRenderAllocations checks, with the body cache off so that every
// request renders its body, that rendering allocates nothing per share:
// List.Shares and appendShare work in the reply's and the body's bytes.
func TestRenderAllocations(t *testing.T) {
	w := sizedWorld(t, 1000, 10)
	h := w.handler(api.NewPositions(), api.Config{BodyCacheBytes: -1})
	allocs := func(render string) float64 {
		req := listRequest(render)
		serve := func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200", rec.Code)
			}
		}
		serve()
		return testing.AllocsPerRun(20, serve)
	}
	small, large := allocs(eventstest.UUID(10)), allocs(eventstest.UUID(1000))
	t.Logf("allocations per rendered body: %.0f for 10 shares, %.0f for 1000 shares", small, large)
	if large > small+10 {
		t.Errorf("allocations per rendered body: %.0f for 1000 shares, want about the %.0f for 10", large, small)
	}
}

// BenchmarkListShares measures the handler in process, for renders of
// several sizes, answering 200 and 304.
func BenchmarkListShares(b *testing.B) {
	sizes := []int{1, 10, 100, 1000}
	w := sizedWorld(b, sizes...)
	h := w.handler(api.NewPositions(), api.Config{})
	for _, n := range sizes {
		req := listRequest(eventstest.UUID(n))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		tag := rec.Header().Get("ETag")
		b.Run(fmt.Sprintf("shares=%d/200", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(rec.Body.Len()))
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
		b.Run(fmt.Sprintf("shares=%d/304", n), func(b *testing.B) {
			b.ReportAllocs()
			req := listRequest(eventstest.UUID(n), "If-None-Match", tag)
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
