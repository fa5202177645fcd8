package main

import (
	"io"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
)

// TestShareBaseURL: SHARE_BASE_URL follows project.updated's rule,
// events.ShareBase, row for row, and is kept as ShareBase normalises it.
// The last rows are those an older check of its own let through.
func TestShareBaseURL(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"https://www.craftkit.dev", "https://share.example.com/", "http://x.dev:8080/s/", "HTTPS://x.dev",
		"", "share.example.com", "ftp://share.example.com", "https://", "https://share.example.com?a=1",
		"https://share.example.com/#s", "https://share example.com",
		"https://u:p@share.example.com", "https://share.example.com//", "https://:443",
		"https://share.example.com/?", "https://share.example.com/#",
	} {
		t.Run(in, func(t *testing.T) {
			var cfg Config
			env := &environment{getenv: func(k string) string {
				if k == "SHARE_BASE_URL" {
					return in
				}
				return ""
			}, stdout: io.Discard, stderr: io.Discard}
			fs, errs := newFlagSet("api", env, &cfg, "api")
			if in == "" {
				fs.Lookup("share-base-url").Value.Set("") // an empty variable means the default
			}
			err := parse(fs, errs, &cfg, nil)
			want, wantErr := events.ShareBase(in)
			switch {
			case wantErr != nil && (err == nil || !strings.Contains(err.Error(), "-share-base-url / SHARE_BASE_URL")):
				t.Fatalf("SHARE_BASE_URL=%q: %v, want a rejection like project.updated's (%v)", in, err, wantErr)
			case wantErr == nil && err != nil:
				t.Fatalf("SHARE_BASE_URL=%q: %v, want it accepted as project.updated accepts it", in, err)
			case wantErr == nil && cfg.ShareBase != want:
				t.Fatalf("SHARE_BASE_URL=%q kept as %q, want %q", in, cfg.ShareBase, want)
			}
		})
	}
}

// TestEventMsgOnePass: the subject and message id of a published event are
// those of the event as the contract decodes it. Members the contract
// ignores (another case of a name, a keyId in a share's data) once made a
// second reading of the line (encoding/json's, for the subject) reject a
// valid event.
func TestEventMsgOnePass(t *testing.T) {
	t.Parallel()
	const other = "11111111-2222-4333-8444-555555555555"
	viewed := line(eventstest.ShareViewed(ctlProject, ctlRender, "s1").With("viewedAt", "2026-06-05T10:00:00Z").WithID("ev-1"))
	// member adds a member after every other: encoding/json kept the last
	// of the names that match a field in any case.
	member := func(name, value string) string {
		return strings.TrimSuffix(viewed, "}") + `,"` + name + `":` + value + "}"
	}
	for _, tt := range []struct{ name, line string }{
		{"as sent", viewed},
		{"another render id under another case", member("RenderID", `"`+other+`"`)},
		{"a number under another case of id", member("ID", `7`)},
		{"a keyId in a share's data", strings.Replace(viewed, `"shareId"`, `"keyId":5,"shareId"`, 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := eventMsg([]byte(tt.line))
			if err != nil {
				t.Fatalf("eventMsg: %v", err)
			}
			if got, want := msg.Subject, events.Subject(events.TypeShareViewed, ctlRender); got != want {
				t.Fatalf("subject = %q, want %q", got, want)
			}
			if got, want := msg.Header.Get(jetstream.MsgIDHeader), "ev-1"; got != want {
				t.Fatalf("Nats-Msg-Id = %q, want %q", got, want)
			}
		})
	}
}

// TestDemoKey: the demo key is a live key, and the demo events register
// it by its events.KeyHash.
func TestDemoKey(t *testing.T) {
	t.Parallel()
	if env, ok := events.KeyEnv(demoKey); !ok || env != events.EnvLive {
		t.Fatalf("KeyEnv(demo key) = %q, %v; want live", env, ok)
	}
	for _, m := range demoEvents() {
		if m["type"] == string(events.TypeAPIKeyCreated) {
			d := m["data"].(map[string]any)
			if d["keyHash"] != events.KeyHash(demoKey) || d["environment"] != events.EnvLive {
				t.Fatal("the demo apikey.created does not carry the demo key's hash and environment")
			}
			return
		}
	}
	t.Fatal("no apikey.created among the demo events")
}

func BenchmarkEventMsg(b *testing.B) {
	line := ctlShare("s1", "email").With("recipientEmail", "ada@example.com").WithID("ev-1").Body()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eventMsg(line); err != nil {
			b.Fatal(err)
		}
	}
}
