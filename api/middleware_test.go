package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
)

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestRequestID(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"), eventstest.RenderCreated(projectA, renderA))
	srv := w.serve(api.Config{})
	auth := "Authorization: Bearer " + liveKey

	tests := []struct {
		name, id string
		echoed   bool
	}{
		{"a sane id is echoed", "req-42_Abc.def", true},
		{"a 64-character id is echoed", strings.Repeat("a", 64), true},
		{"a 65-character id is replaced", strings.Repeat("a", 65), false},
		{"an id with a space is replaced", "req 42", false},
		{"an id with markup is replaced", "<script>", false},
		{"an id with a colon is replaced", "a:b", false},
		{"a non-ASCII id is replaced", "reqé", false},
		{"a missing id is made up", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := []string{auth}
			if tt.id != "" {
				header = append(header, "X-Request-Id: "+tt.id)
			}
			r := request(t, srv, http.MethodGet, sharesPath(renderA), nil, header...)
			got := r.header.Get("X-Request-Id")
			switch {
			case tt.echoed && got != tt.id:
				t.Errorf("X-Request-Id = %q, want %q echoed", got, tt.id)
			case !tt.echoed && !generatedID.MatchString(got):
				t.Errorf("X-Request-Id = %q, want a generated id of 16 hex digits", got)
			}
		})
	}

	t.Run("generated ids differ", func(t *testing.T) {
		a := request(t, srv, http.MethodGet, sharesPath(renderA), nil, auth).header.Get("X-Request-Id")
		b := request(t, srv, http.MethodGet, sharesPath(renderA), nil, auth).header.Get("X-Request-Id")
		if a == b {
			t.Errorf("two requests got the same id %q", a)
		}
	})
	t.Run("errors carry the id too", func(t *testing.T) {
		for _, r := range []reply{
			request(t, srv, http.MethodGet, sharesPath(renderA), nil, "X-Request-Id: unauthorized-1"),
			request(t, srv, http.MethodGet, "/nowhere", nil, "X-Request-Id: unauthorized-1"),
			request(t, srv, http.MethodDelete, sharesPath(renderA), nil, "X-Request-Id: unauthorized-1"),
		} {
			if r.status < 400 || r.header.Get("X-Request-Id") != "unauthorized-1" {
				t.Errorf("status %d X-Request-Id %q, want an error with the id echoed", r.status, r.header.Get("X-Request-Id"))
			}
		}
	})
}
