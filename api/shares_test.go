package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
)

// fieldOrder is the contract's order of the fields of a share.
var fieldOrder = []string{"id", "channel", "recipientEmail", "message", "revokedAt", "revokedReason",
	"expiresAt", "createdAt", "shareToken", "clickCount", "shareUrl"}

// goldenWorld is the render of the golden body: every kind of share, with
// nulls, a revocation with and without reason, views, views before
// creation and times with offsets and sub-millisecond digits.
func goldenWorld(t *testing.T) *world {
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "share-link", "2026-06-05T10:05:00Z").
			With("message", "Here is your signed agreement.").
			With("expiresAt", "2026-12-31T23:59:59Z").
			With("shareToken", "cks_link_one"),
		eventstest.ShareCreated(projectA, renderA, "share-email", "2026-06-05T12:06:00.123456+02:00").
			With("channel", "email").With("recipientEmail", "ada@example.com").
			With("shareToken", "cks_email_two"),
		eventstest.ShareCreated(projectA, renderA, "share-revoked", "2026-06-05T10:07:00Z"),
		eventstest.ShareRevoked(projectA, renderA, "share-revoked", "2026-06-05T11:00:00.5Z", "revoked_by_partner"),
		eventstest.ShareCreated(projectA, renderA, "share-revoked-no-reason", "2026-06-05T10:08:00Z").
			With("expiresAt", "2027-01-01T00:00:00.999999-01:00"),
		eventstest.ShareRevoked(projectA, renderA, "share-revoked-no-reason", "2026-06-05T11:30:00+00:00", nil),
		eventstest.ShareViewed(projectA, renderA, "share-late"),
		eventstest.ShareViewed(projectA, renderA, "share-late"),
		eventstest.ShareCreated(projectA, renderA, "share-late", "2026-06-05T10:09:00Z"),
		eventstest.ShareViewed(projectA, renderA, "share-link"),
		eventstest.ShareViewed(projectA, renderA, "share-link"),
		eventstest.ShareViewed(projectA, renderA, "share-link"),
		eventstest.ShareViewed(projectA, renderA, "share-email"),
		eventstest.ShareViewed(projectA, renderA, "share-revoked"),
	)
	return w
}

func TestListSharesGolden(t *testing.T) {
	t.Parallel()
	w := goldenWorld(t)
	srv := w.serve(api.Config{})
	r := get(t, srv, renderA, liveKey)
	if r.status != 200 {
		t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
	}
	if got, want := r.header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	if got, want := r.header.Get("Content-Length"), fmt.Sprint(len(r.body)); got != want {
		t.Errorf("Content-Length = %q, want %q", got, want)
	}

	golden := filepath.Join("testdata", "list_shares.json")
	if *update {
		if err := os.WriteFile(golden, r.body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run Golden -update to create it)", err)
	}
	if !bytes.Equal(r.body, want) {
		t.Errorf("body differs from %s (go test ./api -run Golden -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, r.body, want)
	}

	t.Run("every share has exactly the contract's fields in order", func(t *testing.T) {
		orders := objectKeys(t, r.body)
		if len(orders) != 5 {
			t.Fatalf("got %d shares, want 5", len(orders))
		}
		for i, keys := range orders {
			if !slices.Equal(keys, fieldOrder) {
				t.Errorf("share %d fields = %v, want %v", i, keys, fieldOrder)
			}
		}
	})
	t.Run("absent values are null", func(t *testing.T) {
		byID := map[string]share{}
		for _, s := range r.shares(t) {
			byID[s.ID] = s
		}
		link := byID["share-link"]
		if link.RecipientEmail != nil || link.RevokedAt != nil || link.RevokedReason != nil {
			t.Errorf("share-link: recipientEmail %s revokedAt %s revokedReason %s, want null", str(link.RecipientEmail), str(link.RevokedAt), str(link.RevokedReason))
		}
		email := byID["share-email"]
		if email.Message != nil || email.ExpiresAt != nil {
			t.Errorf("share-email: message %s expiresAt %s, want null", str(email.Message), str(email.ExpiresAt))
		}
		noReason := byID["share-revoked-no-reason"]
		if noReason.RevokedAt == nil || noReason.RevokedReason != nil {
			t.Errorf("share-revoked-no-reason: revokedAt %s revokedReason %s, want a time and null", str(noReason.RevokedAt), str(noReason.RevokedReason))
		}
		if !bytes.Contains(r.body, []byte(`"recipientEmail":null,"message":null,"revokedAt":null,"revokedReason":null,"expiresAt":null`)) {
			t.Errorf("body has no share rendering every absent value as null:\n%s", r.body)
		}
	})
}

// objectKeys returns the member names, in order, of each object in the
// body's "shares" array.
func objectKeys(t testing.TB, body []byte) [][]string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	expect := func(want json.Delim) {
		t.Helper()
		tok, err := dec.Token()
		if err != nil || tok != want {
			t.Fatalf("token = %v (%v), want %v", tok, err, want)
		}
	}
	expect('{')
	if tok, err := dec.Token(); err != nil || tok != "shares" {
		t.Fatalf("first member = %v (%v), want \"shares\"", tok, err)
	}
	expect('[')
	var out [][]string
	for dec.More() {
		expect('{')
		var keys []string
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k.(string))
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
		}
		expect('}')
		out = append(out, keys)
	}
	expect(']')
	expect('}')
	if dec.More() {
		t.Fatalf("data after the top-level object")
	}
	return out
}

func TestListSharesEmptyRender(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA))
	r := get(t, w.serve(api.Config{}), renderA, liveKey)
	if got, want := string(r.body), "{\"shares\":[]}\n"; r.status != 200 || got != want {
		t.Fatalf("status %d body %q, want 200 %q", r.status, got, want)
	}
}

var apiTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestListSharesTimeNormalisation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"positive offset to UTC", "2026-06-05T12:05:00+02:00", "2026-06-05T10:05:00.000Z"},
		{"negative half-hour offset to UTC", "2026-06-05T04:35:00-05:30", "2026-06-05T10:05:00.000Z"},
		{"offset crossing midnight", "2026-06-05T22:00:00-05:30", "2026-06-06T03:30:00.000Z"},
		{"offset crossing the year", "2026-12-31T23:59:59.9995-00:30", "2027-01-01T00:29:59.999Z"},
		{"zero offset spelled +00:00", "2026-06-05T10:05:00+00:00", "2026-06-05T10:05:00.000Z"},
		{"no fraction gets .000", "2026-06-05T10:05:00Z", "2026-06-05T10:05:00.000Z"},
		{"one digit padded", "2026-06-05T10:05:00.5Z", "2026-06-05T10:05:00.500Z"},
		{"two digits padded", "2026-06-05T10:05:00.05Z", "2026-06-05T10:05:00.050Z"},
		{"microseconds truncated", "2026-06-05T10:05:00.123456Z", "2026-06-05T10:05:00.123Z"},
		{"nanoseconds truncated", "2026-06-05T10:05:00.123456789Z", "2026-06-05T10:05:00.123Z"},
		{"truncated not rounded up", "2026-06-05T10:05:00.999999999Z", "2026-06-05T10:05:00.999Z"},
		{"truncated not rounded to the next second", "2026-06-05T10:05:59.9999+01:00", "2026-06-05T09:05:59.999Z"},
		{"before the epoch truncates downwards", "1969-12-31T23:59:59.9999Z", "1969-12-31T23:59:59.999Z"},
	}
	w := newWorld(t)
	evs := []eventstest.Event{eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA)}
	for i, tt := range tests {
		id := fmt.Sprintf("share-%02d", i)
		evs = append(evs,
			eventstest.ShareCreated(projectA, renderA, id, tt.in).With("expiresAt", tt.in),
			eventstest.ShareRevoked(projectA, renderA, id, tt.in, "r"))
	}
	w.apply(evs...)
	byID := map[string]share{}
	for _, s := range get(t, w.serve(api.Config{}), renderA, liveKey).shares(t) {
		byID[s.ID] = s
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := byID[fmt.Sprintf("share-%02d", i)]
			if !ok {
				t.Fatal("share missing from the list")
			}
			for _, f := range []struct {
				field string
				got   *string
			}{{"createdAt", &s.CreatedAt}, {"expiresAt", s.ExpiresAt}, {"revokedAt", s.RevokedAt}} {
				if f.got == nil || *f.got != tt.want {
					t.Errorf("%s(%q) = %s, want %q", f.field, tt.in, str(f.got), tt.want)
				}
				if f.got != nil && !apiTime.MatchString(*f.got) {
					t.Errorf("%s = %q, want YYYY-MM-DDThh:mm:ss.mmmZ", f.field, *f.got)
				}
			}
		})
	}
}

func TestListSharesOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	created := map[string]string{
		"a":    "2026-06-05T10:00:00Z",
		"b":    "2026-06-05T12:00:00Z",
		"c":    "2026-06-05T11:00:00Z",
		"o":    "2026-06-05T13:30:00+02:00", // 11:30Z: between b and c, whatever the string says
		"t-1":  "2026-06-05T09:00:00Z",
		"t-10": "2026-06-05T09:00:00Z",
		"t-2":  "2026-06-05T09:00:00Z",
		"T-3":  "2026-06-05T09:00:00Z",
		"u":    "2026-06-05T09:00:00Z",
		"m-a":  "2026-06-05T08:00:00.1239Z", // the same millisecond as m-b
		"m-b":  "2026-06-05T08:00:00.1231Z",
	}
	evs := []eventstest.Event{eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA)}
	for _, id := range []string{"t-1", "m-a", "a", "T-3", "c", "u", "b", "t-10", "m-b", "o", "t-2"} {
		evs = append(evs, eventstest.ShareCreated(projectA, renderA, id, created[id]))
	}
	evs = append(evs, eventstest.ShareRevoked(projectA, renderA, "c", "2026-06-05T11:30:00Z", "revoked_by_partner"))
	w.apply(evs...)

	list := get(t, w.serve(api.Config{}), renderA, liveKey).shares(t)
	var got []string
	for _, s := range list {
		got = append(got, s.ID)
	}
	// Newest first; equal createdAt (to the millisecond) by id descending,
	// byte-wise; the revoked share c keeps its place.
	want := []string{"b", "o", "c", "a", "u", "t-2", "t-10", "t-1", "T-3", "m-b", "m-a"}
	if !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if list[2].RevokedAt == nil {
		t.Errorf("revoked share c has revokedAt null")
	}
}

func TestListSharesThousands(t *testing.T) {
	t.Parallel()
	const n = 3000
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA))
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	type expected struct {
		id      string
		created time.Time
		clicks  int64
		revoked bool
	}
	want := make([]expected, n)
	var batch []eventstest.Event
	flush := func() {
		if len(batch) > 0 {
			w.apply(batch...)
			batch = batch[:0]
		}
	}
	for i := range n {
		e := expected{id: fmt.Sprintf("share-%05d", i), created: base.Add(time.Duration(i/2) * time.Second)}
		batch = append(batch, eventstest.ShareCreated(projectA, renderA, e.id, e.created.Format(time.RFC3339Nano)))
		if len(batch) == 1000 {
			flush()
		}
		want[i] = e
	}
	flush()
	for i := range want {
		if i%7 == 0 {
			want[i].clicks = int64(i%5 + 1)
			for range want[i].clicks {
				batch = append(batch, eventstest.ShareViewed(projectA, renderA, want[i].id))
			}
		}
		if i%10 == 0 {
			want[i].revoked = true
			batch = append(batch, eventstest.ShareRevoked(projectA, renderA, want[i].id, "2026-06-06T00:00:00Z", nil))
		}
	}
	flush()
	slices.SortFunc(want, func(a, b expected) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})

	got := get(t, w.serve(api.Config{}), renderA, liveKey).shares(t)
	if len(got) != n {
		t.Fatalf("got %d shares, want %d", len(got), n)
	}
	var clicks, wantClicks int64
	for i, s := range got {
		e := want[i]
		if s.ID != e.id {
			t.Fatalf("share %d is %s, want %s", i, s.ID, e.id)
		}
		if s.ClickCount != e.clicks || (s.RevokedAt != nil) != e.revoked {
			t.Errorf("%s: clickCount %d revoked %v, want %d %v", s.ID, s.ClickCount, s.RevokedAt != nil, e.clicks, e.revoked)
		}
		if wantAt := e.created.Format("2006-01-02T15:04:05.000Z"); s.CreatedAt != wantAt {
			t.Errorf("%s: createdAt %s, want %s", s.ID, s.CreatedAt, wantAt)
		}
		clicks += s.ClickCount
		wantClicks += e.clicks
	}
	if clicks != wantClicks {
		t.Errorf("total clicks %d, want %d", clicks, wantClicks)
	}
}

func TestListSharesEscaping(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, s string }{
		{"quotes", `she said "sign here"`},
		{"backslashes and a literal escape", `C:\path\to\file \u0041 \"`},
		{"newline, return and tab", "line one\nline two\r\n\tindented"},
		{"control characters", "nul\x00 bell\x07 bs\x08 vt\x0b ff\x0c esc\x1b us\x1f del\x7f"},
		{"line and paragraph separators", "a\u2028b\u2029c"},
		{"non-ASCII", "Zoë Saldaña — 日本語 — Ελληνικά — ÅÆØ"},
		{"emoji and joiners", "🎉 done 👩‍👩‍👧‍👦 🇫🇷"},
		{"HTML", "</script><b>&amp;</b>'"},
		{"replacement character and BOM", "\ufffd\ufeff"},
		{"long mixed", strings.Repeat("é\"\\\n🎉", 300)},
	}
	w := newWorld(t)
	evs := []eventstest.Event{eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA)}
	for i, tt := range tests {
		token := "cks_" + tt.s
		if utf8.RuneCountInString(token) > 512 {
			token = string([]rune(token)[:512])
		}
		evs = append(evs, eventstest.ShareCreated(projectA, renderA, fmt.Sprintf("share-%02d", i), "2026-06-05T10:00:00Z").
			With("channel", "email").With("recipientEmail", tt.s).With("message", tt.s).With("shareToken", token))
	}
	w.apply(evs...)
	r := get(t, w.serve(api.Config{}), renderA, liveKey)
	if !json.Valid(r.body) {
		t.Fatalf("body is not valid JSON:\n%q", r.body)
	}
	for _, b := range r.body[:len(r.body)-1] {
		if b < 0x20 {
			t.Fatalf("body holds raw control byte %#x", b)
		}
	}
	if bytes.Contains(r.body, []byte("\u2028")) || bytes.Contains(r.body, []byte("\u2029")) {
		t.Errorf("body holds a raw U+2028 or U+2029, which breaks JavaScript embedding")
	}
	byID := map[string]share{}
	for _, s := range r.shares(t) {
		byID[s.ID] = s
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := byID[fmt.Sprintf("share-%02d", i)]
			token := "cks_" + tt.s
			if utf8.RuneCountInString(token) > 512 {
				token = string([]rune(token)[:512])
			}
			if s.Message == nil || *s.Message != tt.s {
				t.Errorf("message = %s, want %q", str(s.Message), tt.s)
			}
			if s.RecipientEmail == nil || *s.RecipientEmail != tt.s {
				t.Errorf("recipientEmail = %s, want %q", str(s.RecipientEmail), tt.s)
			}
			if s.ShareToken != token {
				t.Errorf("shareToken = %q, want %q", s.ShareToken, token)
			}
			if want := defaultBase + "/share/" + token; s.ShareURL != want {
				t.Errorf("shareUrl = %q, want %q", s.ShareURL, want)
			}
		})
	}
}

func TestListSharesShareURL(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z").With("shareToken", "cks_one"),
		eventstest.ShareCreated(projectA, renderA, "s2", "2026-06-05T10:01:00Z").With("shareToken", "cks_two"),
	)
	srv := w.serve(api.Config{})
	other := w.serve(api.Config{ShareBase: "https://staging.craftkit.dev"})

	steps := []struct {
		name  string
		apply []eventstest.Event
		srv   string // "" for srv, "other" for the server with another default
		base  string
	}{
		{name: "no project.updated uses the configured default", base: defaultBase},
		{name: "the configured default is the server's", srv: "other", base: "https://staging.craftkit.dev"},
		{name: "project.updated sets the project's base",
			apply: []eventstest.Event{eventstest.ProjectUpdated(projectA, "https://share.example.com")}, base: "https://share.example.com"},
		{name: "the project's base wins over any server default", srv: "other", base: "https://share.example.com"},
		{name: "a trailing slash is not doubled",
			apply: []eventstest.Event{eventstest.ProjectUpdated(projectA, "https://links.example.org/acme/")}, base: "https://links.example.org/acme"},
		{name: "another project's base changes nothing",
			apply: []eventstest.Event{eventstest.ProjectUpdated(projectB, "https://other.example.net")}, base: "https://links.example.org/acme"},
		{name: "null reverts to the default",
			apply: []eventstest.Event{eventstest.ProjectUpdated(projectA, nil)}, base: defaultBase},
		{name: "null reverts to each server's default", srv: "other", base: "https://staging.craftkit.dev"},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			if len(st.apply) > 0 {
				w.apply(st.apply...)
			}
			s := srv
			if st.srv == "other" {
				s = other
			}
			for _, sh := range get(t, s, renderA, liveKey).shares(t) {
				if want := st.base + "/share/" + sh.ShareToken; sh.ShareURL != want {
					t.Errorf("%s: shareUrl = %q, want %q", sh.ID, sh.ShareURL, want)
				}
			}
		}) {
			return
		}
	}
}

func TestListSharesHead(t *testing.T) {
	t.Parallel()
	w := goldenWorld(t)
	srv := w.serve(api.Config{})
	g := get(t, srv, renderA, liveKey)
	h := request(t, srv, http.MethodHead, sharesPath(renderA), nil, "Authorization: Bearer "+liveKey)
	if h.status != http.StatusOK || len(h.body) != 0 {
		t.Fatalf("HEAD: status %d body %q, want 200 and no body", h.status, h.body)
	}
	for _, name := range []string{"ETag", "X-Projection-Seq", "Content-Type", "Content-Length"} {
		if got, want := h.header.Get(name), g.header.Get(name); got != want {
			t.Errorf("HEAD %s = %q, GET's is %q", name, got, want)
		}
	}
}
