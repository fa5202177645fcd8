package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

const shareBase = "https://share.bench.example"

// serveHTTP serves h on a new loopback listener with the timeouts sharesd's
// serve.go sets, and returns its address and a function that shuts it down
// and reports how serving ended.
func serveHTTP(h http.Handler) (string, func() error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      12 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return ln.Addr().String(), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil
}

// newAPI is the API as sharesd serves it: api.NewServer on a store with the
// API's Redis client, following the projector's announcements. The
// returned takenIn records when it took in each announced position.
func newAPI(ctx context.Context, store *readmodel.Store) (http.Handler, *takenIn) {
	return newAPIWith(ctx, store, 0)
}

// newAPIWith is newAPI with the body cache bounded at bodyCache bytes (0:
// the default).
func newAPIWith(ctx context.Context, store *readmodel.Store, bodyCache int) (http.Handler, *takenIn) {
	srv := api.NewServer(slog.New(slog.DiscardHandler), store, api.NewPositions(), nil,
		api.Config{Env: events.EnvLive, ShareBase: shareBase, BodyCacheBytes: bodyCache})
	t := &takenIn{live: make(chan struct{})}
	var once sync.Once
	go store.FollowApplied(ctx, func(a readmodel.AppliedPos) {
		srv.Follow(a)
		switch {
		case a.Announced:
			t.record(a.Seq)
		case !a.Lost:
			once.Do(func() { close(t.live) })
		}
	})
	return srv, t
}

// takenIn records, while on, when the API took in each announced position:
// the moment Server.Follow returned, from which every request answers
// what the position holds (a body kept in memory is no longer sent if the
// batch changed its render). That is when a change becomes visible through
// the API.
type takenIn struct {
	live chan struct{} // closed once the API follows the announcements
	mu   sync.Mutex
	on   bool
	seen []announcement
}

func (t *takenIn) record(seq uint64) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.on {
		t.seen = append(t.seen, announcement{at: now, pos: seq})
	}
}

// start starts recording, afresh.
func (t *takenIn) start() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.on, t.seen = true, nil
}

// stop stops recording and returns what was recorded.
func (t *takenIn) stop() []announcement {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.on = false
	return t.seen
}

// fixedResponse is what the API answered for one render: the ceiling
// sends the same bytes.
type fixedResponse struct {
	header http.Header
	body   []byte
}

// fetchResponses asks the API for each render and checks that it lists
// the expected number of shares.
func fetchResponses(ctx context.Context, addr, key string, renders map[string]int) (map[string]fixedResponse, error) {
	out := map[string]fixedResponse{}
	for id, want := range renders {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+listPath(id), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET render %s: status %d: %s", id, resp.StatusCode, body)
		}
		var list struct {
			Shares []json.RawMessage `json:"shares"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, fmt.Errorf("GET render %s: %w", id, err)
		}
		if len(list.Shares) != want {
			return nil, fmt.Errorf("GET render %s: %d shares, want %d", id, len(list.Shares), want)
		}
		h := resp.Header.Clone()
		h.Del("Date")
		out[id] = fixedResponse{header: h, body: body}
	}
	return out, nil
}

// ceiling is the HTTP ceiling: gorilla/mux on the same route, sending the
// API's own responses (headers and body) from memory; If-None-Match with
// the response's ETag answers 304 as the API does.
func ceiling(responses map[string]fixedResponse) http.Handler {
	r := mux.NewRouter()
	r.Handle("/v1/renders/{id}/shares", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok := responses[mux.Vars(r)["id"]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		for k, v := range resp.header {
			h[k] = v
		}
		if inm := r.Header.Get("If-None-Match"); inm != "" && inm == resp.header.Get("ETag") {
			h.Del("Content-Type")
			h.Del("Content-Length")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(resp.body)
	})).Methods(http.MethodGet)
	return r
}
