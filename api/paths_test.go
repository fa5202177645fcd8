package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
)

// TestUncleanPaths sends paths exactly as written (on a raw connection, so
// no client cleans them or follows a redirect): a path with an empty, "."
// or ".." segment, or an encoded separator or dot, gets the JSON 404
// envelope, never a redirect to its clean form nor the route that its
// decoded form would match, even with a valid key.
func TestUncleanPaths(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(
		eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
	)
	srv := w.serve(api.Config{})
	list := sharesPath(renderA)
	for _, path := range []string{
		"/v1/renders/" + renderA + "/../x",
		"/v1/renders/x/../" + renderA + "/shares",
		"//v1/renders/" + renderA + "/shares",
		"/v1//renders/" + renderA + "/shares",
		"/v1/renders/" + renderA + "//shares",
		"/v1/renders/" + renderA + "/./shares",
		"/./v1/renders/" + renderA + "/shares",
		list + "/.",
		list + "/..",
		list + "/",
		"/v1/renders/a%2Fb/shares",
		"/v1/renders/" + renderA + "%2Fshares",
		"/v1/renders/" + renderA + "%2fshares",
		"/v1%2Frenders/" + renderA + "/shares",
		"/v1/renders/%2e%2e/shares",
		"/v1/renders/" + renderA + "%5Cshares",
		"/healthz/.",
		"/readyz/..",
		"//healthz",
	} {
		t.Run(path, func(t *testing.T) {
			r := rawGet(t, srv, path)
			if loc := r.header.Get("Location"); loc != "" {
				t.Errorf("Location: %s: a redirect to the clean path", loc)
			}
			r.wantError(t, http.StatusNotFound, "not_found")
		})
	}
	// The clean forms still answer, a query may hold anything, and the
	// percent-encoding of other characters is still allowed.
	for path, want := range map[string]int{
		list:                                 200,
		list + "?x=/../%2F//":                200,
		"/healthz":                           200,
		"/v1/renders/%41/shares":             404,
		"/v1/renders/x%20y/shares":           404,
		"/v1/renders/" + renderB + "/shares": 404,
	} {
		if r := rawGet(t, srv, path); r.status != want {
			t.Errorf("GET %s = %d, want %d: %s", path, r.status, want, r.body)
		}
	}
}

// rawGet sends GET path, byte for byte, with liveKey.
func rawGet(t *testing.T, srv *httptest.Server, path string) reply {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: sharesd\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", path, liveKey); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}
