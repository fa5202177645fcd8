package api_test

// The OpenAPI description against the real server: every documented status
// of every operation is produced by a real request and validated with
// kin-openapi (status, headers, body schema); every route in routes.go is in
// the description and every path of the description is routed.
//
// kin-openapi v0.153.0 reads OpenAPI 3.1 as it is: doc.Validate turns on its
// 3.1 rules by itself when the document says "openapi: 3.1.x", and
// openapi3filter.ValidateResponse then validates bodies and headers with a
// JSON Schema 2020-12 validator (type arrays such as [string, "null"],
// const). Two things it does not validate at all, so this file checks them
// by hand against the same description: HEAD responses (ValidateResponse
// returns nil for HEAD) are validated as the GET they mirror, without the
// body, and 304 responses (skipped too) by specCheckHeaders.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// Fixture ids of this file. The key is a test key; it is never printed.
const (
	specProject  = "3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8"
	specRender   = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"
	specEmpty    = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9e" // registered, no shares
	specDeleted  = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9f" // created, then deleted
	specKey      = "ck_live_openapi_test_key"
	specRevoked  = "ck_live_openapi_test_key_revoked"
	specBase     = "https://share.example.com/links"
	specDefault  = "https://www.craftkit.dev"
	specSharesOf = "/v1/renders/%s/shares"
)

// loadSpec loads and validates api/openapi.yaml as the server embeds it.
func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.yaml is OpenAPI %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml does not validate: %v", err)
	}
	return doc
}

// specRouter matches requests to the description's operations whatever the
// host: the servers it lists are not this test's.
func specRouter(t testing.TB, doc *openapi3.T) routers.Router {
	t.Helper()
	local := *doc
	local.Servers = nil
	r, err := gorillamux.NewRouter(&local)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return r
}

// specData is a project with its own share base, a live key and a revoked
// one, a render whose shares cover every kind of field (nulls, an offset
// and sub-millisecond time, revoked with and without a reason, views), a
// render without shares and a deleted render, decoded as the projector
// decodes them.
func specData(t testing.TB) []events.Event {
	p, r := specProject, specRender
	share := func(id, channel string, email, msg, expires any, created string) eventstest.Event {
		return eventstest.ShareCreated(p, r, id, created).With("channel", channel).
			With("recipientEmail", email).With("message", msg).With("expiresAt", expires)
	}
	evs := []eventstest.Event{
		eventstest.APIKeyCreated(p, "key_spec", specKey, "live"),
		eventstest.APIKeyCreated(p, "key_gone", specRevoked, "live"),
		eventstest.APIKeyRevoked(p, "key_gone"),
		eventstest.ProjectUpdated(p, specBase),
		eventstest.RenderCreated(p, r),
		share("s-link", "link", nil, nil, nil, "2026-06-05T10:05:00Z"),
		share("s-email", "email", "ada@example.com", "Here is your signed agreement.",
			"2026-12-31T23:59:59+02:00", "2026-06-05T12:06:00.123456+02:00"),
		share("s-revoked", "link", nil, "ok", "2027-01-01T00:00:00Z", "2026-06-05T10:07:00Z"),
		share("s-silent", "link", nil, nil, nil, "2026-06-05T10:08:00Z"),
		eventstest.ShareRevoked(p, r, "s-revoked", "2026-06-05T11:00:00Z", "revoked_by_partner"),
		eventstest.ShareRevoked(p, r, "s-silent", "2026-06-05T11:01:00Z", nil),
	}
	for _, s := range []string{"s-link", "s-link", "s-revoked"} {
		evs = append(evs, eventstest.ShareViewed(p, r, s))
	}
	evs = append(evs, eventstest.RenderCreated(p, specEmpty), eventstest.RenderCreated(p, specDeleted),
		eventstest.RenderDeleted(p, specDeleted))
	out := make([]events.Event, len(evs))
	for i, e := range evs {
		out[i] = e.WithID(fmt.Sprintf("spec-%d", i+1)).Decode(t)
	}
	return out
}

// specServer is the API over HTTP on its own redis-server. With data it
// has an active generation holding specData; without, Redis is empty, as
// while a rebuild from zero runs. Its metrics tell the route of each
// request ("unmatched" for none).
type specServer struct {
	*httptest.Server
	redis  *redistest.Server
	reg    *prometheus.Registry
	counts map[string]uint64 // requests by route at the last lastRoute
}

func startSpecServer(t testing.TB, data bool) *specServer {
	t.Helper()
	rs := redistest.Start(t)
	ctx := context.Background()
	if data {
		store := readmodel.New(rs.Client(t), readmodel.DefaultHorizon)
		gen := readmodel.NewGen(time.Now())
		if ok, err := store.Activate(ctx, gen, ""); err != nil || !ok {
			t.Fatalf("activate %s: ok=%v err=%v", gen, ok, err)
		}
		evs := specData(t)
		ops := make([]readmodel.Op, len(evs))
		for i, ev := range evs {
			ops[i] = readmodel.Op{Seq: uint64(i + 1), Time: time.Date(2026, 6, 5, 13, 0, 0, 0, time.UTC), Event: ev}
		}
		out, _, err := store.Apply(ctx, gen, ops, 0, false)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		for i, o := range out {
			if o.Outcome != readmodel.Applied {
				t.Fatalf("apply %s: %v, want applied", evs[i].ID, o)
			}
		}
	}
	// The API's client, configured as cmd/sharesd configures it.
	rdb := redis.NewClient(&redis.Options{
		Addr: rs.Addr, ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond, PoolTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	store := readmodel.New(rdb, readmodel.DefaultHorizon)

	reg := prometheus.NewRegistry()
	s := &specServer{redis: rs, reg: reg}
	handler := api.NewServer(slog.New(slog.DiscardHandler), store, nil, api.NewMetrics(reg), api.Config{
		Env:            "live",
		ShareBase:      specDefault,
		MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Ready: func(ctx context.Context) error { // what serve's readiness checks of Redis
			if err := rdb.Ping(ctx).Err(); err != nil {
				return &api.NotReady{Reason: api.ReasonRedis, Err: err}
			}
			ctl, err := store.ReadControl(ctx)
			if err != nil {
				return &api.NotReady{Reason: api.ReasonRedis, Err: err}
			}
			if ctl.Active == "" {
				return &api.NotReady{Reason: api.ReasonNoGeneration}
			}
			return nil
		},
	})
	s.Server = httptest.NewServer(handler)
	t.Cleanup(s.Close)
	return s
}

// lastRoute is the route whose request count in the server's metrics grew
// since the last call ("" for none).
func (s *specServer) lastRoute(t testing.TB) string {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "sharesd_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					counts[l.GetValue()] += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	last := ""
	for route, n := range counts {
		if n != s.counts[route] {
			last = route
		}
	}
	s.counts = counts
	return last
}

// specCase is one real request and the status it must get.
type specCase struct {
	name   string
	srv    *specServer
	method string
	path   string
	header http.Header
	body   string
	status int
}

// specResponse is a response with its body read.
type specResponse struct {
	req    *http.Request
	status int
	header http.Header
	body   []byte
}

func (c specCase) do(t testing.TB) specResponse {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, c.srv.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", c.method, c.path, err)
	}
	return specResponse{req: req, status: resp.StatusCode, header: resp.Header, body: b}
}

func specAuth(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

func specWithHeader(h http.Header, k, v string) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(k, v)
	return h
}

// validate checks r against the operation of the description that its
// request routes to. A 405 is checked against the GET operation of the
// path, where it is documented (no operation exists for the refused
// method). It returns the operation's method, for coverage.
func specValidate(t testing.TB, doc *openapi3.T, router routers.Router, r specResponse) (string, error) {
	t.Helper()
	probe := r.req.Clone(context.Background())
	if r.status == http.StatusMethodNotAllowed {
		probe.Method = http.MethodGet
	}
	route, params, err := router.FindRoute(probe)
	if err != nil {
		return "", fmt.Errorf("%s %s: no operation in openapi.yaml: %w", r.req.Method, r.req.URL.Path, err)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	req := r.req
	if r.req.Method == http.MethodHead {
		// ValidateResponse skips HEAD: validate its headers as a GET's,
		// against the HEAD operation, and its body as empty.
		req = r.req.Clone(context.Background())
		req.Method = http.MethodGet
		opts.ExcludeResponseBody = true
		if len(r.body) != 0 {
			return route.Method, fmt.Errorf("HEAD answered a body of %d bytes", len(r.body))
		}
	}
	if r.status == http.StatusNotModified {
		// ValidateResponse skips 304 altogether.
		resp := route.Operation.Responses.Status(r.status)
		if resp == nil {
			return route.Method, fmt.Errorf("status %d is not documented", r.status)
		}
		if len(r.body) != 0 {
			return route.Method, fmt.Errorf("304 answered a body of %d bytes", len(r.body))
		}
		return route.Method, specCheckHeaders(resp.Value, r.header)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.status,
		Header:                 r.header,
		Options:                opts,
	}
	in.SetBodyBytes(r.body)
	return route.Method, openapi3filter.ValidateResponse(context.Background(), in)
}

// specCheckHeaders validates the documented headers of a response that
// ValidateResponse will not look at.
func specCheckHeaders(resp *openapi3.Response, h http.Header) error {
	var errs []error
	for name, ref := range resp.Headers {
		hv := ref.Value
		v := h.Get(name)
		if v == "" {
			if hv.Required {
				errs = append(errs, fmt.Errorf("header %s missing", name))
			}
			continue
		}
		var value any = v
		if hv.Schema.Value.Type.Is(openapi3.TypeInteger) {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("header %s = %q: %v", name, v, err))
				continue
			}
			value = float64(n)
		}
		if err := hv.Schema.Value.VisitJSON(value, openapi3.EnableJSONSchema2020()); err != nil {
			errs = append(errs, fmt.Errorf("header %s = %q: %v", name, v, err))
		}
	}
	return errors.Join(errs...)
}

func TestOpenAPIDescribesEveryResponse(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	router := specRouter(t, doc)
	full := startSpecServer(t, true)
	empty := startSpecServer(t, false)
	paused := startSpecServer(t, true)

	list := fmt.Sprintf(specSharesOf, specRender)
	auth := specAuth(specKey)
	// A first GET gives the ETag that makes the 304s.
	first := specCase{srv: full, method: http.MethodGet, path: list, header: auth}.do(t)
	if first.status != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200: %s", list, first.status, first.body)
	}
	etag := first.header.Get("ETag")
	current := specWithHeader(auth, "If-None-Match", etag)

	cases := []specCase{
		{"list", full, "GET", list, auth, "", 200},
		{"list uppercase id", full, "GET", fmt.Sprintf(specSharesOf, strings.ToUpper(specRender)), auth, "", 200},
		{"list without shares", full, "GET", fmt.Sprintf(specSharesOf, specEmpty), auth, "", 200},
		{"list with minSeq reached", full, "GET", list + "?minSeq=3", auth, "", 200},
		{"list with a stale etag", full, "GET", list, specWithHeader(auth, "If-None-Match", `"1.1.x"`), "", 200},
		{"list not modified", full, "GET", list, current, "", 304},
		{"list not modified star", full, "GET", list, specWithHeader(auth, "If-None-Match", "*"), "", 304},
		{"list with a body", full, "GET", list, auth, `{"a":1}`, 400},
		{"list with a bad minSeq", full, "GET", list + "?minSeq=-1", auth, "", 400},
		{"list without a key", full, "GET", list, nil, "", 401},
		{"list with a revoked key", full, "GET", list, specAuth(specRevoked), "", 401},
		{"list with a test key", full, "GET", list, specAuth("ck_test_openapi"), "", 401},
		{"list of an unknown render", full, "GET", fmt.Sprintf(specSharesOf, eventstest.UUID(0)), auth, "", 404},
		{"list of a malformed id", full, "GET", fmt.Sprintf(specSharesOf, "not-a-uuid"), auth, "", 404},
		{"list of a deleted render", full, "GET", fmt.Sprintf(specSharesOf, specDeleted), auth, "", 404},
		{"list by POST", full, "POST", list, auth, "", 405},
		{"list by DELETE", full, "DELETE", list, auth, "", 405},
		{"list by POST with a body", full, "POST", list, auth, `{"a":1}`, 405},
		{"list without a generation", empty, "GET", list, auth, "", 503},
		{"head list", full, "HEAD", list, auth, "", 200},
		{"head list not modified", full, "HEAD", list, current, "", 304},
		{"head list with a bad minSeq", full, "HEAD", list + "?minSeq=x", auth, "", 400},
		{"head list without a key", full, "HEAD", list, nil, "", 401},
		{"head list of an unknown render", full, "HEAD", fmt.Sprintf(specSharesOf, eventstest.UUID(0)), auth, "", 404},
		{"head list without a generation", empty, "HEAD", list, auth, "", 503},
		{"healthz", full, "GET", "/healthz", nil, "", 200},
		{"healthz with a body", full, "GET", "/healthz", nil, "x", 400},
		{"healthz by POST", full, "POST", "/healthz", nil, "", 405},
		{"head healthz", full, "HEAD", "/healthz", nil, "", 200},
		{"readyz", full, "GET", "/readyz", nil, "", 200},
		{"readyz with a body", full, "GET", "/readyz", nil, "x", 400},
		{"readyz by PUT", full, "PUT", "/readyz", nil, "", 405},
		{"readyz without a generation", empty, "GET", "/readyz", nil, "", 503},
		{"head readyz", full, "HEAD", "/readyz", nil, "", 200},
		{"head readyz without a generation", empty, "HEAD", "/readyz", nil, "", 503},
		{"metrics", full, "GET", "/metrics", nil, "", 200},
		{"metrics with a body", full, "GET", "/metrics", nil, "x", 400},
		{"metrics by POST", full, "POST", "/metrics", nil, "", 405},
		{"head metrics", full, "HEAD", "/metrics", nil, "", 200},
		{"openapi", full, "GET", "/openapi.yaml", nil, "", 200},
		{"openapi with a body", full, "GET", "/openapi.yaml", nil, "x", 400},
		{"openapi by PATCH", full, "PATCH", "/openapi.yaml", nil, "", 405},
		{"head openapi", full, "HEAD", "/openapi.yaml", nil, "", 200},
	}
	covered := map[string]bool{} // "GET /path 200"
	for _, c := range cases {
		r := c.do(t)
		if r.status != c.status {
			t.Errorf("%s: %s %s = %d, want %d: %s", c.name, c.method, c.path, r.status, c.status, r.body)
			continue
		}
		method, err := specValidate(t, doc, router, r)
		if err != nil {
			t.Errorf("%s: %s %s %d does not match openapi.yaml: %v\nbody: %s", c.name, c.method, c.path, r.status, err, r.body)
			continue
		}
		route, _, _ := router.FindRoute(r.req)
		if route == nil { // 405: documented on GET
			route, _, _ = router.FindRoute(specWithMethod(r.req, method))
		}
		covered[method+" "+route.Path+" "+strconv.Itoa(r.status)] = true
	}

	t.Run("redis paused", func(t *testing.T) {
		// Redis that does not answer: 503 within about a second.
		paused.redis.Pause(t)
		defer paused.redis.Resume(t)
		for _, c := range []specCase{
			{"list", paused, "GET", list, auth, "", 503},
			{"readyz", paused, "GET", "/readyz", nil, "", 503},
		} {
			start := time.Now()
			r := c.do(t)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s took %v with Redis paused, want about a second at most", c.name, d)
			}
			if r.status != c.status {
				t.Fatalf("%s: %s %s = %d, want %d: %s", c.name, c.method, c.path, r.status, c.status, r.body)
			}
			if _, err := specValidate(t, doc, router, r); err != nil {
				t.Errorf("%s with Redis paused does not match openapi.yaml: %v", c.name, err)
			}
		}
	})

	// Every status documented for every operation was produced above.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if !covered[method+" "+path+" "+status] {
					t.Errorf("%s %s %s is documented but no test case produced it", method, path, status)
				}
			}
		}
	}
}

func specWithMethod(r *http.Request, method string) *http.Request {
	r = r.Clone(context.Background())
	r.Method = method
	return r
}

// TestOpenAPIValidationCatchesDrift makes sure the validation above has
// teeth: a real 200 or 401, changed the way code drifts from a
// description, must be refused.
func TestOpenAPIValidationCatchesDrift(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	router := specRouter(t, doc)
	srv := startSpecServer(t, true)
	list := fmt.Sprintf(specSharesOf, specRender)
	ok := specCase{srv: srv, method: "GET", path: list, header: specAuth(specKey)}.do(t)
	denied := specCase{srv: srv, method: "GET", path: list}.do(t)
	if ok.status != 200 || denied.status != 401 {
		t.Fatalf("statuses %d and %d, want 200 and 401", ok.status, denied.status)
	}
	if _, err := specValidate(t, doc, router, ok); err != nil {
		t.Fatalf("the real 200 does not validate: %v", err)
	}

	// editShare changes the second share (full of non-null values) of the
	// real body.
	editShare := func(f func(map[string]any)) func(specResponse) specResponse {
		return func(r specResponse) specResponse {
			var body map[string][]map[string]any
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
			f(body["shares"][1])
			r.body, _ = json.Marshal(body)
			return r
		}
	}
	for _, c := range []struct {
		name string
		base specResponse
		edit func(specResponse) specResponse
	}{
		{"share without shareUrl", ok, editShare(func(s map[string]any) { delete(s, "shareUrl") })},
		{"share with an extra field", ok, editShare(func(s map[string]any) { s["renderId"] = specRender })},
		{"clickCount as a string", ok, editShare(func(s map[string]any) { s["clickCount"] = "3" })},
		{"negative clickCount", ok, editShare(func(s map[string]any) { s["clickCount"] = -1 })},
		{"createdAt without milliseconds", ok, editShare(func(s map[string]any) { s["createdAt"] = "2026-06-05T10:06:00Z" })},
		{"null createdAt", ok, editShare(func(s map[string]any) { s["createdAt"] = nil })},
		{"recipientEmail as a number", ok, editShare(func(s map[string]any) { s["recipientEmail"] = 1 })},
		{"unknown channel", ok, editShare(func(s map[string]any) { s["channel"] = "sms" })},
		{"shares as null", ok, func(r specResponse) specResponse { r.body = []byte(`{"shares":null}`); return r }},
		{"no X-Request-Id", ok, func(r specResponse) specResponse { r.header = specWithout(r.header, "X-Request-Id"); return r }},
		{"no ETag", ok, func(r specResponse) specResponse { r.header = specWithout(r.header, "ETag"); return r }},
		{"weak ETag", ok, func(r specResponse) specResponse {
			r.header = specWithHeader(r.header, "ETag", "W/"+r.header.Get("ETag"))
			return r
		}},
		{"X-Projection-Seq not a number", ok, func(r specResponse) specResponse {
			r.header = specWithHeader(r.header, "X-Projection-Seq", "seven")
			return r
		}},
		{"undocumented status", ok, func(r specResponse) specResponse { r.status = 500; return r }},
		{"text body", ok, func(r specResponse) specResponse {
			r.header = specWithHeader(r.header, "Content-Type", "text/plain")
			return r
		}},
		{"401 without WWW-Authenticate", denied, func(r specResponse) specResponse {
			r.header = specWithout(r.header, "WWW-Authenticate")
			return r
		}},
		{"401 with another code", denied, func(r specResponse) specResponse {
			r.body = bytes.Replace(r.body, []byte(`"unauthorized"`), []byte(`"not_found"`), 1)
			return r
		}},
		{"401 telling why", denied, func(r specResponse) specResponse {
			r.body = bytes.Replace(r.body, []byte(`a valid API key is required`), []byte(`key revoked`), 1)
			return r
		}},
		{"401 with a bare message", denied, func(r specResponse) specResponse {
			r.body = []byte(`{"code":"unauthorized","message":"a valid API key is required"}`)
			return r
		}},
	} {
		bad := c.edit(specResponse{req: c.base.req, status: c.base.status, header: c.base.header.Clone(), body: bytes.Clone(c.base.body)})
		if _, err := specValidate(t, doc, router, bad); err == nil {
			t.Errorf("%s: validated, want a mismatch with openapi.yaml", c.name)
		}
	}
}

func specWithout(h http.Header, k string) http.Header {
	h = h.Clone()
	h.Del(k)
	return h
}

// TestOpenAPIListsEveryRoute checks both ways that the paths and methods of
// openapi.yaml are those routes.go registers: from the source of routes.go,
// and by requesting every operation of the description from the server.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	described := map[string][]string{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described[path] = append(described[path], method)
		}
		slices.Sort(described[path])
	}
	registered := specRoutesOf(t, "routes.go")
	if len(registered) == 0 {
		t.Fatal("found no route in routes.go")
	}
	for path, methods := range registered {
		if got := described[path]; !slices.Equal(got, methods) {
			t.Errorf("routes.go registers %s for %v; openapi.yaml describes %v", path, methods, got)
		}
	}
	for path, methods := range described {
		if _, ok := registered[path]; !ok {
			t.Errorf("openapi.yaml describes %s %v; routes.go registers no such path", path, methods)
		}
	}

	srv := startSpecServer(t, true)
	for path, methods := range described {
		for _, method := range methods {
			c := specCase{srv: srv, method: method, path: strings.ReplaceAll(path, "{id}", specRender), header: specAuth(specKey)}
			r := c.do(t)
			if route := srv.lastRoute(t); route == "unmatched" || r.status == http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d on route %q, want the route of openapi.yaml", method, path, r.status, route)
			}
		}
	}
	// A path that is not described is not routed, and its 404 is the
	// documented envelope.
	r := specCase{srv: srv, method: "GET", path: "/v1/renders", header: specAuth(specKey)}.do(t)
	if got, want := r.status, http.StatusNotFound; got != want {
		t.Fatalf("GET /v1/renders = %d, want %d", got, want)
	}
	var body any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("404 body: %v", err)
	}
	if err := doc.Components.Schemas["NotFoundError"].Value.VisitJSON(body, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("404 of an unknown path does not match NotFoundError: %v\n%s", err, r.body)
	}
	// What is served is the file.
	r = specCase{srv: srv, method: "GET", path: "/openapi.yaml"}.do(t)
	if !bytes.Equal(r.body, api.OpenAPI()) {
		t.Errorf("GET /openapi.yaml served %d bytes, not the %d of openapi.yaml", len(r.body), len(api.OpenAPI()))
	}
}

// specRoutesOf reads the routes a Go file registers as
// r.Handle("/path", …).Methods(http.MethodGet, …), by path, with their
// methods sorted.
func specRoutesOf(t testing.TB, file string) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Methods" {
			return true
		}
		handle, ok := sel.X.(*ast.CallExpr)
		if !ok || len(handle.Args) == 0 {
			return true
		}
		if hs, ok := handle.Fun.(*ast.SelectorExpr); !ok || (hs.Sel.Name != "Handle" && hs.Sel.Name != "HandleFunc") {
			return true
		}
		lit, ok := handle.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Errorf("routes.go: a route whose path is not a literal: %T", handle.Args[0])
			return true
		}
		path, _ := strconv.Unquote(lit.Value)
		for _, a := range call.Args {
			switch a := a.(type) {
			case *ast.SelectorExpr: // http.MethodGet
				routes[path] = append(routes[path], strings.ToUpper(strings.TrimPrefix(a.Sel.Name, "Method")))
			case *ast.BasicLit:
				m, _ := strconv.Unquote(a.Value)
				routes[path] = append(routes[path], strings.ToUpper(m))
			}
		}
		slices.Sort(routes[path])
		return true
	})
	return routes
}
