package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/model"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Fixed ids of the tests. The keys are test keys, but the tests still never
// print a key or its hash.
const (
	projectA = "0b6c7c0e-8a1f-4c7e-9d2a-3e4f5a6b7c8d"
	projectB = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	renderA  = "5b3e8f20-9a4d-4c6b-8e2f-1d7a6b5c4e32"
	renderB  = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
	liveKey  = "ck_live_api_test_key_project_a"
	testKey  = "ck_test_api_test_key_project_a"

	defaultBase = "https://www.craftkit.dev"
)

// streamEpoch is the stream time of sequence 0; sequence n is n ms later.
var streamEpoch = time.Date(2026, 6, 5, 9, 0, 0, 0, time.UTC)

// world is a read model in a real redis-server, written through
// readmodel.Store as the projector writes it, and served by the API.
type world struct {
	t       testing.TB
	redis   *redistest.Server
	cluster *redistest.Cluster // instead of redis, for a Redis Cluster
	store   *readmodel.Store   // the writer's store (the projector's side)
	gen     string
	seq     uint64
}

// newWorld starts a redis-server with an active, empty generation.
func newWorld(t testing.TB) *world {
	t.Helper()
	w := newEmptyWorld(t)
	if ok, err := w.store.Activate(context.Background(), w.gen, ""); err != nil || !ok {
		t.Fatalf("activate %s: ok=%v err=%v", w.gen, ok, err)
	}
	return w
}

// newEmptyWorld starts a redis-server with no active generation, as after
// Redis lost its data.
func newEmptyWorld(t testing.TB) *world {
	t.Helper()
	srv := redistest.Start(t)
	store := readmodel.New(srv.Client(t), 24*time.Hour)
	if err := store.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &world{t: t, redis: srv, store: store, gen: readmodel.NewGen(time.Now())}
}

// apiClient is a Redis client configured as cmd/sharesd configures the
// API's: short timeouts bounded by the request's context, no retries.
func (w *world) apiClient() *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:                  w.redis.Addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           300 * time.Millisecond,
		ReadTimeout:           500 * time.Millisecond,
		WriteTimeout:          500 * time.Millisecond,
		PoolTimeout:           500 * time.Millisecond,
		MaxRetries:            -1,
	})
	w.t.Cleanup(func() { _ = c.Close() })
	return c
}

// handler is the API on its own Redis client, as a separate process has it.
func (w *world) handler(positions *api.Positions, cfg api.Config) http.Handler {
	if cfg.Env == "" {
		cfg.Env = "live"
	}
	if cfg.ShareBase == "" {
		cfg.ShareBase = defaultBase
	}
	return api.NewServer(slog.New(slog.DiscardHandler), w.apiStore(), positions, nil, cfg)
}

// apiStore is a Store on a client configured as the API's (on a cluster,
// the cluster's client).
func (w *world) apiStore() *readmodel.Store {
	if w.cluster != nil {
		return readmodel.New(w.cluster.Client(w.t), 24*time.Hour)
	}
	return readmodel.New(w.apiClient(), 24*time.Hour)
}

// serve runs the API over HTTP for the test.
func (w *world) serve(cfg api.Config) *httptest.Server {
	return w.serveWith(api.NewPositions(), cfg)
}

func (w *world) serveWith(positions *api.Positions, cfg api.Config) *httptest.Server {
	srv := httptest.NewServer(w.handler(positions, cfg))
	w.t.Cleanup(srv.Close)
	return srv
}

// serveStore runs the API on store over HTTP for the test.
func serveStore(t testing.TB, store api.Store, positions *api.Positions, cfg api.Config) *httptest.Server {
	if cfg.Env == "" {
		cfg.Env = "live"
	}
	if cfg.ShareBase == "" {
		cfg.ShareBase = defaultBase
	}
	srv := httptest.NewServer(api.NewServer(slog.New(slog.DiscardHandler), store, positions, nil, cfg))
	t.Cleanup(srv.Close)
	return srv
}

// ops numbers evs with the next stream sequences and decodes them with
// events.Decode, as the projector does.
func (w *world) ops(evs ...eventstest.Event) []readmodel.Op {
	w.t.Helper()
	ops := make([]readmodel.Op, len(evs))
	for i, e := range evs {
		w.seq++
		ops[i] = readmodel.Op{Seq: w.seq, Time: streamEpoch.Add(time.Duration(w.seq) * time.Millisecond), Event: e.Decode(w.t)}
	}
	return ops
}

// apply applies evs in one Apply call and returns their outcomes.
func (w *world) apply(evs ...eventstest.Event) []readmodel.Outcome {
	w.t.Helper()
	return w.applyOps(w.ops(evs...))
}

func (w *world) applyOps(ops []readmodel.Op) []readmodel.Outcome {
	w.t.Helper()
	res, _, err := w.store.Apply(context.Background(), w.gen, ops, 0, true)
	if err != nil {
		w.t.Fatalf("apply: %v", err)
	}
	out := make([]readmodel.Outcome, len(res))
	for i, r := range res {
		out[i] = r.Outcome
	}
	return out
}

// reply is an HTTP response with its body read.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// request sends method path with the given header lines ("Name: value").
func request(t testing.TB, srv *httptest.Server, method, path string, body io.Reader, header ...string) reply {
	t.Helper()
	r, err := fetch(srv, method, path, body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fetch is request for goroutines other than the test's.
func fetch(srv *httptest.Server, method, path string, body io.Reader, header ...string) (reply, error) {
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		return reply{}, err
	}
	for _, h := range header {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Add(name, value)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// get lists render's shares with key (none when key is "").
func get(t testing.TB, srv *httptest.Server, render, key string, header ...string) reply {
	t.Helper()
	if key != "" {
		header = append(header, "Authorization: Bearer "+key)
	}
	return request(t, srv, http.MethodGet, sharesPath(render), nil, header...)
}

func sharesPath(render string) string { return "/v1/renders/" + render + "/shares" }

// share is one element of the list as the API renders it: the reference
// model's type, fields in the contract's order.
type share = model.Share

// shares decodes a 200 reply, refusing unknown fields.
func (r reply) shares(t testing.TB) []share {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
	}
	var body struct {
		Shares []share `json:"shares"`
	}
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("decode body: %v\n%s", err, r.body)
	}
	if body.Shares == nil {
		t.Fatalf("shares is null or missing, want an array: %s", r.body)
	}
	return body.Shares
}

// envelope decodes an error reply and checks its status and code.
func (r reply) wantError(t testing.TB, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if got, want := r.header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var env struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("decode error envelope: %v\n%s", err, r.body)
	}
	if env.Error == nil || env.Error.Code == nil || env.Error.Message == nil {
		t.Fatalf("body %s, want {\"error\":{\"code\",\"message\"}}", r.body)
	}
	if got := *env.Error.Code; got != code {
		t.Errorf("error.code = %q, want %q", got, code)
	}
	if *env.Error.Message == "" {
		t.Errorf("error.message is empty")
	}
}

// strp is a pointer to s, for expected nullable fields.
func strp(s string) *string { return &s }

// str shows a nullable string in a failure message.
func str(p *string) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprintf("%q", *p)
}
