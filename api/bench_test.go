package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// The names in this file start with bench so they cannot meet the helpers
// of the other tests of package api_test.

const (
	benchProject = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c"
	benchKey     = "ck_live_bench_key_of_the_micro_benchmarks"
)

// benchRender is a distinct render id for each size.
func benchRender(size int) string { return eventstest.UUID(size) }

// benchWorld writes, through readmodel.Store as the projector does, one
// render per size with that many shares (a view on each, every tenth
// revoked), activates the generation and returns the API's handler on a
// store with its own client. When follow is set the handler follows the
// announcements (and answers lists from memory); benchWorld returns once
// it does.
func benchWorld(b *testing.B, follow bool, sizes ...int) *api.Server {
	b.Helper()
	ctx := context.Background()
	srv := redistest.Start(b)
	store := readmodel.New(srv.Client(b), readmodel.DefaultHorizon)
	gen := readmodel.NewGen(time.Now())
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var ops []readmodel.Op
	add := func(t events.Type, render string, data any) {
		ops = append(ops, readmodel.Op{Seq: uint64(len(ops) + 1), Time: at, Event: events.Event{
			ID: fmt.Sprintf("bench-%d", len(ops)), Type: t, OccurredAt: at, ProjectID: benchProject, RenderID: render, Data: data}})
	}
	add(events.TypeAPIKeyCreated, "", &events.APIKeyCreated{KeyID: "key_bench", KeyHash: events.KeyHash(benchKey), Environment: "live"})
	msg, expires := "Here is your signed agreement.", at.Add(90*24*time.Hour)
	for _, n := range sizes {
		render := benchRender(n)
		add(events.TypeRenderCreated, render, &events.Empty{})
		for i := range n {
			id := fmt.Sprintf("share-%05d", i)
			add(events.TypeShareCreated, render, &events.ShareCreated{ShareID: id, Channel: "link", Message: &msg,
				ExpiresAt: &expires, CreatedAt: at.Add(time.Duration(i) * time.Second), ShareToken: "cks_bench_token_" + id})
			add(events.TypeShareViewed, render, &events.ShareViewed{ShareID: id, ViewedAt: at})
			if i%10 == 0 {
				add(events.TypeShareRevoked, render, &events.ShareRevoked{ShareID: id, RevokedAt: at})
			}
		}
	}
	for len(ops) > 0 {
		k := min(len(ops), 512)
		out, _, err := store.Apply(ctx, gen, ops[:k], 0, false)
		if err != nil {
			b.Fatal(err)
		}
		for i, o := range out {
			if o.Outcome != readmodel.Applied {
				b.Fatalf("apply seq %d: %v", ops[i].Seq, o)
			}
		}
		ops = ops[k:]
	}
	if ok, err := store.Activate(ctx, gen, ""); err != nil || !ok {
		b.Fatalf("activate: ok=%v err=%v", ok, err)
	}
	apiStore := readmodel.New(srv.Client(b), readmodel.DefaultHorizon)
	h := api.NewServer(slog.New(slog.DiscardHandler), apiStore, api.NewPositions(), nil, api.Config{ShareBase: "https://share.example"})
	if follow {
		benchFollow(b, apiStore, h)
	}
	return h
}

// benchFollow runs h.Follow on store's announcements until b ends, and
// returns once the subscription is live.
func benchFollow(b *testing.B, store *readmodel.Store, h *api.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	live, done := make(chan struct{}, 1), make(chan struct{})
	go func() {
		defer close(done)
		store.FollowApplied(ctx, func(a readmodel.AppliedPos) {
			h.Follow(a)
			if !a.Announced && !a.Lost {
				select {
				case live <- struct{}{}:
				default:
				}
			}
		})
	}()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-live:
	case <-time.After(10 * time.Second):
		b.Fatal("no live subscription within 10s")
	}
}

func benchRequest(size int, header ...string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/v1/renders/"+benchRender(size)+"/shares", nil)
	req.Header.Set("Authorization", "Bearer "+benchKey)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// BenchmarkListSharesParallel runs the list handler from GOMAXPROCS
// goroutines at once (httptest.NewRecorder, real redis-server), as the HTTP
// server runs it under load: the Redis client's pool and the Redis round
// trips are shared. BenchmarkListShares (alloc_test.go) measures one
// request at a time.
//
// memory=false asks Redis on every request (no announcements followed);
// memory=true follows them, so a warm render is answered from memory.
func BenchmarkListSharesParallel(b *testing.B) {
	for _, follow := range []bool{false, true} {
		b.Run(fmt.Sprintf("memory=%v", follow), func(b *testing.B) { benchListParallel(b, benchWorld(b, follow, 10, 100, 1000), 10, 100, 1000) })
	}
}

func benchListParallel(b *testing.B, h http.Handler, sizes ...int) {
	for _, n := range sizes {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, benchRequest(n))
		if rec.Code != http.StatusOK {
			b.Fatalf("shares=%d: status %d: %s", n, rec.Code, rec.Body)
		}
		body, tag := rec.Body.Len(), rec.Header().Get("ETag")
		for _, c := range []struct {
			name   string
			status int
			header []string
		}{{"200", http.StatusOK, nil}, {"304", http.StatusNotModified, []string{"If-None-Match", tag}}} {
			b.Run(fmt.Sprintf("shares=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				if c.status == http.StatusOK {
					b.SetBytes(int64(body))
				}
				b.RunParallel(func(pb *testing.PB) {
					req := benchRequest(n, c.header...)
					for pb.Next() {
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, req)
						if rec.Code != c.status {
							b.Errorf("status %d, want %d", rec.Code, c.status)
							return
						}
					}
				})
			})
		}
	}
}
