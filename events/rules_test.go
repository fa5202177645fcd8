package events

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestKeyHash(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ key, want string }{
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}, // FIPS 180-2 example
		{"test", testHash},
		// The demo key of `sharesd dev`: the hash covers the whole key, prefix included.
		{"ck_live_sharesd_demo_key_do_not_use_in_production", "e7c41cd73b56d8a68fff9762ea5793471dbb43a0dceed94c4e63e90512d4a5cb"},
	} {
		if got := KeyHash(tt.key); got != tt.want {
			t.Errorf("KeyHash(%q) = %s, want %s", tt.key, got, tt.want)
		}
	}
}

// TestKeyHashDecodes: a hash KeyHash makes is one apikey.created accepts.
func TestKeyHashDecodes(t *testing.T) {
	t.Parallel()
	subject, data := edit(t, TypeAPIKeyCreated, set("data.keyHash", KeyHash(KeyPrefix(EnvTest)+"x")))
	if _, err := Decode(subject, []byte(data)); err != nil {
		t.Fatalf("Decode of an apikey.created carrying KeyHash: %v", err)
	}
}

func TestKeyEnv(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, key string
		env       string // "" when the key has not the form of one
	}{
		{"a live key", "ck_live_abc", EnvLive},
		{"a test key", "ck_test_abc", EnvTest},
		{"a secret with underscores", "ck_live_sharesd_demo_key", EnvLive},
		{"a one-character secret", "ck_test_x", EnvTest},
		{"the live prefix alone", "ck_live_", ""},
		{"the test prefix alone", "ck_test_", ""},
		{"another environment", "ck_prod_abc", ""},
		{"an uppercase environment", "ck_LIVE_abc", ""},
		{"an uppercase prefix", "CK_live_abc", ""},
		{"no environment", "ck__abc", ""},
		{"no separator after the environment", "ck_liveabc", ""},
		{"the environment alone", "ck_live", ""},
		{"no prefix", "live_abc", ""},
		{"empty", "", ""},
		{"a key hash", testHash, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, ok := KeyEnv(tt.key)
			if got, want := ok, tt.env != ""; got != want || env != tt.env {
				t.Fatalf("KeyEnv(%q) = %q, %v; want %q, %v", tt.key, env, got, tt.env, want)
			}
		})
	}
}

func TestKeyPrefix(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ env, want string }{{EnvLive, "ck_live_"}, {EnvTest, "ck_test_"}} {
		if got := KeyPrefix(tt.env); got != tt.want {
			t.Errorf("KeyPrefix(%q) = %q, want %q", tt.env, got, tt.want)
		}
		// A minted key is the prefix and a secret; KeyEnv reads it back.
		if env, ok := KeyEnv(KeyPrefix(tt.env) + "secret"); !ok || env != tt.env {
			t.Errorf("KeyEnv(KeyPrefix(%q)+secret) = %q, %v", tt.env, env, ok)
		}
	}
}

// TestKeyEnvAllocs: the API checks every request's key with KeyEnv.
func TestKeyEnvAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { KeyEnv("ck_live_abc") }); n != 0 {
		t.Fatalf("KeyEnv allocates %v times, want 0", n)
	}
}

// shareBaseRows are the share bases project.updated and SHARE_BASE_URL
// must judge alike (cmd/sharesd checks SHARE_BASE_URL against ShareBase):
// want is the base kept, "" for a rejection.
var shareBaseRows = []struct{ in, want string }{
	{"https://www.craftkit.dev", "https://www.craftkit.dev"},
	{"https://share.example.com/", "https://share.example.com"},
	{"http://x.dev:8080/s/", "http://x.dev:8080/s"},
	{"https://x.dev/a/b", "https://x.dev/a/b"},
	{"HTTPS://x.dev", "HTTPS://x.dev"},
	{"", ""},
	{"share.example.com", ""},
	{"/s", ""},
	{"//share.example.com", ""},
	{"ftp://share.example.com", ""},
	{"https:share.example.com", ""},
	{"https://", ""},
	{"https:///s", ""},
	{"https://:443", ""},
	{"https://share.example.com?a=1", ""},
	{"https://share.example.com/?", ""},
	{"https://share.example.com/#s", ""},
	{"https://share.example.com/#", ""},
	{"https://u:p@share.example.com", ""},
	{"https://u@share.example.com", ""},
	{"https://share.example.com//", ""},
	{"https://share.example.com:x", ""},
	{"https://share example.com", ""},
}

// TestShareBase checks ShareBase and that project.updated follows it:
// Decode keeps the same base, or rejects data.shareBase with ShareBase's
// reason.
func TestShareBase(t *testing.T) {
	t.Parallel()
	for _, tt := range shareBaseRows {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ShareBase(tt.in)
			switch {
			case tt.want == "" && err == nil:
				t.Fatalf("ShareBase(%q) = %q, want an error", tt.in, got)
			case tt.want != "" && (err != nil || got != tt.want):
				t.Fatalf("ShareBase(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			subject, data := edit(t, TypeProjectUpdated, set("data.shareBase", tt.in))
			ev, derr := Decode(subject, []byte(data))
			var bad *DecodeError
			switch {
			case tt.want != "" && derr != nil:
				t.Fatalf("Decode rejects shareBase %q: %v", tt.in, derr)
			case tt.want != "" && *ev.Data.(*ProjectUpdated).ShareBase != tt.want:
				t.Fatalf("Decode keeps shareBase %q, want %q", *ev.Data.(*ProjectUpdated).ShareBase, tt.want)
			case tt.want == "" && (!errors.As(derr, &bad) || bad.Field != "data.shareBase" || bad.Reason != err.Error()):
				t.Fatalf("Decode of shareBase %q: %v, want a rejection of data.shareBase: %v", tt.in, derr, err)
			}
		})
	}
}

// TestEventSubject checks the subject of each type: what Event.Subject
// gives, DecodeBody's event carries and Decode accepts.
func TestEventSubject(t *testing.T) {
	t.Parallel()
	const upperRender = "7C9E6679-7425-40DE-944B-E07FC1F90AE7"
	tests := []struct {
		name string
		typ  Type
		edit func(map[string]any)
		want string
	}{
		{"render.created", TypeRenderCreated, nil, "craftkit.render.created." + renderID},
		{"render.deleted", TypeRenderDeleted, nil, "craftkit.render.deleted." + renderID},
		{"share.created", TypeShareCreated, nil, "craftkit.share.created." + renderID},
		{"share.revoked", TypeShareRevoked, nil, "craftkit.share.revoked." + renderID},
		{"share.viewed", TypeShareViewed, nil, "craftkit.share.viewed." + renderID},
		{"apikey.created", TypeAPIKeyCreated, nil, "craftkit.apikey.created.key_1"},
		{"apikey.revoked", TypeAPIKeyRevoked, nil, "craftkit.apikey.revoked.key_1"},
		{"project.updated", TypeProjectUpdated, nil, "craftkit.project.updated." + projectID},
		{"an uppercase render id goes lowercase", TypeShareViewed, set("renderId", upperRender), "craftkit.share.viewed." + renderID},
		{"an uppercase project id goes lowercase", TypeProjectUpdated, set("projectId", strings.ToUpper(projectID)), "craftkit.project.updated." + projectID},
		{"a key id keeps its case", TypeAPIKeyRevoked, set("data.keyId", "Key_A"), "craftkit.apikey.revoked.Key_A"},
	}
	covered := map[Type]bool{}
	for _, tt := range tests {
		covered[tt.typ] = true
		t.Run(tt.name, func(t *testing.T) {
			_, data := wire(tt.typ)
			if tt.edit != nil {
				_, data = edit(t, tt.typ, tt.edit)
			}
			ev, err := DecodeBody([]byte(data))
			if err != nil {
				t.Fatalf("DecodeBody: %v", err)
			}
			if got := ev.Subject(); got != tt.want {
				t.Fatalf("Subject() = %q, want %q", got, tt.want)
			}
			if got := Subject(ev.Type, ev.Entity()); got != tt.want {
				t.Fatalf("Subject(Type, Entity()) = %q, want %q", got, tt.want)
			}
			if got, want := matches([]string{ProjectSubjects}, tt.want), strings.HasPrefix(string(tt.typ), "project."); got != want {
				t.Fatalf("ProjectSubjects matches %q: %v, want %v", tt.want, got, want)
			}
			if got, want := matches(RenderSubjects(upperRender), tt.want), tt.typ.RenderScoped(); got != want {
				t.Fatalf("RenderSubjects matches %q: %v, want %v", tt.want, got, want)
			}
			again, err := Decode(tt.want, []byte(data))
			if err != nil {
				t.Fatalf("Decode on its own subject: %v", err)
			}
			if !reflect.DeepEqual(again, ev) {
				t.Fatalf("Decode = %s, DecodeBody = %s", dump(again), dump(ev))
			}
		})
	}
	for _, typ := range Types {
		if !covered[typ] {
			t.Errorf("no subject row for %s", typ)
		}
	}
}

// matches reports whether one of filters, of literal and "*" tokens,
// matches subject.
func matches(filters []string, subject string) bool {
	for _, f := range filters {
		ft, st := strings.Split(f, "."), strings.Split(subject, ".")
		ok := len(ft) == len(st)
		for i := 0; ok && i < len(ft); i++ {
			ok = ft[i] == "*" || ft[i] == st[i]
		}
		if ok {
			return true
		}
	}
	return false
}

// TestDecodeBody: DecodeBody checks everything but the subject, in
// Decode's order.
func TestDecodeBody(t *testing.T) {
	t.Parallel()
	_, bad := edit(t, TypeShareViewed, set("data.shareId", 7))
	for _, data := range []string{`[1]`, `{`, bad} {
		_, want := Decode("craftkit.x", []byte(data))
		if _, err := DecodeBody([]byte(data)); err == nil || err.Error() != want.Error() {
			t.Errorf("DecodeBody(%s) = %v, want %v", data, err, want)
		}
	}
}

func TestDecodeErrorCode(t *testing.T) {
	t.Parallel()
	_, viewed := wire(TypeShareViewed)
	for _, tt := range []struct {
		name, subject, data, want string
	}{
		{"not JSON", "craftkit.x", `not json`, CodeMalformed},
		{"not an object", "craftkit.x", `[1]`, CodeMalformed},
		{"too large", "craftkit.x", `"` + strings.Repeat("x", MaxSize) + `"`, CodeMalformed},
		{"an unknown type", "craftkit.x", strings.Replace(viewed, "share.viewed", "share.liked", 1), CodeUnknownType},
		{"no type", "craftkit.x", strings.Replace(viewed, `"type"`, `"kind"`, 1), CodeUnknownType},
		{"another subject", "craftkit.share.viewed." + otherID, viewed, CodeBadSubject},
		{"a bad envelope field", "craftkit.x", strings.Replace(viewed, projectID, "p1", 1), CodeInvalidField},
		{"a bad data field", "craftkit.x", strings.Replace(viewed, "2026-06-05T11:00:00Z", "noon", 1), CodeInvalidField},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.subject, []byte(tt.data))
			var bad *DecodeError
			if !errors.As(err, &bad) {
				t.Fatalf("Decode: %v, want a *DecodeError", err)
			}
			if got := bad.Code(); got != tt.want {
				t.Fatalf("Code() of %v = %q, want %q", err, got, tt.want)
			}
		})
	}
}
