package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// ctlHarness is one test's NATS and Redis, and the environment that points
// the CLI at them.
type ctlHarness struct {
	getenv func(string) string
	js     jetstream.JetStream
	rdb    *redis.Client
	store  *readmodel.Store
}

// startCtl starts NATS (with both streams) and redis-server, and a projector
// when withProjector is set.
func startCtl(t *testing.T, withProjector bool) *ctlHarness {
	t.Helper()
	ns, _, js := natstest.Start(t, projector.EnsureStreams)
	rs := redistest.Start(t)
	vars := map[string]string{"NATS_URL": ns.ClientURL(), "REDIS_URL": rs.URL, "LOG_LEVEL": "error"}
	rdb := rs.Client(t)
	h := &ctlHarness{
		getenv: func(k string) string { return vars[k] },
		js:     js,
		rdb:    rdb,
		store:  testStore(rdb, time.Hour),
	}
	if withProjector {
		ctx, cancel := context.WithCancel(context.Background())
		proj := projector.New(js, h.store, slog.New(slog.DiscardHandler), projector.NewMetrics(prometheus.NewRegistry()), projector.Config{})
		done := make(chan struct{})
		go func() { defer close(done); _ = proj.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return h
}

// run runs `sharesd args…` with stdin and returns its stdout and stderr.
func (h *ctlHarness) run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, h.getenv, strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// waitShares waits until the harness's render lists n shares (what names
// them in the failure).
func (h *ctlHarness) waitShares(t *testing.T, timeout time.Duration, n int, what string) {
	t.Helper()
	polltest.WaitFor(t, timeout, func() error {
		l, err := h.store.List(context.Background(), ctlProject, ctlRender, nil)
		if err != nil {
			return err
		}
		if l.Len() != n {
			return fmt.Errorf("render lists %d shares, want %s", l.Len(), what)
		}
		return nil
	})
}

func (h *ctlHarness) streamState(t *testing.T, name string) jetstream.StreamState {
	t.Helper()
	s, err := h.js.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().State
}

const (
	ctlProject = "0b7e3c5a-1d2f-4a6b-8c9d-0e1f2a3b4c5d"
	ctlRender  = "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
)

// ctlShare is a share of ctlRender created at 10:05 on channel.
func ctlShare(id, channel string) eventstest.Event {
	return eventstest.ShareCreated(ctlProject, ctlRender, id, "2026-06-05T10:05:00Z").With("channel", channel)
}

// line is e as a line of `sharesd publish` input.
func line(e eventstest.Event) string { return string(e.Body()) }

func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPublish(t *testing.T) {
	t.Parallel()
	h := startCtl(t, false)
	created := line(eventstest.RenderCreated(ctlProject, ctlRender).WithID("ev-render"))
	lines := []string{
		created,
		line(ctlShare("share-1", "link").WithID("ev-share-1")),
		"",
		line(ctlShare("share-2", "email").WithID("ev-share-2")),
		line(eventstest.ShareViewed(ctlProject, ctlRender, "share-1").With("viewedAt", "2026-06-05T11:00:00Z").WithID("ev-view-1")),
		created, // the same event again: the stream drops it by Nats-Msg-Id
	}

	t.Run("file", func(t *testing.T) {
		out, _, err := h.run(t, "", "publish", "-file", writeLines(t, lines...))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if want := "published 5 events"; !strings.Contains(out, want) {
			t.Fatalf("output %q lacks %q", out, want)
		}
		if want := "4 stored, 1 duplicates"; !strings.Contains(out, want) {
			t.Fatalf("output %q lacks %q", out, want)
		}
		if got, want := h.streamState(t, events.Stream).Msgs, uint64(4); got != want {
			t.Fatalf("stream holds %d events, want %d", got, want)
		}
		s, _ := h.js.Stream(context.Background(), events.Stream)
		m, err := s.GetMsg(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Subject, events.Subject(events.TypeShareCreated, ctlRender); got != want {
			t.Fatalf("subject = %q, want %q", got, want)
		}
		if got, want := m.Header.Get(jetstream.MsgIDHeader), "ev-share-1"; got != want {
			t.Fatalf("Nats-Msg-Id = %q, want %q", got, want)
		}
	})

	t.Run("stdin duplicates", func(t *testing.T) {
		out, _, err := h.run(t, strings.Join(lines, "\n"), "publish")
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if want := "0 stored, 5 duplicates"; !strings.Contains(out, want) {
			t.Fatalf("output %q lacks %q", out, want)
		}
		if got, want := h.streamState(t, events.Stream).Msgs, uint64(4); got != want {
			t.Fatalf("stream holds %d events, want %d", got, want)
		}
	})

	t.Run("bad lines publish nothing", func(t *testing.T) {
		file := writeLines(t,
			line(ctlShare("share-3", "link").WithID("ev-share-3")),
			"",
			line(ctlShare("share-4", "sms").WithID("ev-share-4")),
			`{"id": "ev-5", "type": "share.viewed"`,
		)
		_, _, err := h.run(t, "", "publish", "-file", file)
		if err == nil {
			t.Fatal("publish of a file with bad lines succeeded")
		}
		for _, want := range []string{"2 invalid lines, nothing published", "line 3: events: data.channel:", "line 4: events: $:"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q lacks %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "line 1:") {
			t.Fatalf("error %q blames the valid line 1", err)
		}
		if got, want := h.streamState(t, events.Stream).Msgs, uint64(4); got != want {
			t.Fatalf("stream holds %d events, want %d: something was published", got, want)
		}
	})

	t.Run("status without projector", func(t *testing.T) {
		out, _, err := h.run(t, "", "status")
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		for _, want := range []string{"seq 1..4, 4 events", "no projector holds a partition lease", "no active generation"} {
			if !strings.Contains(out, want) {
				t.Fatalf("status %q lacks %q", out, want)
			}
		}
	})
}

// ctlLargeEvents is enough events for several publish windows.
const ctlLargeEvents = 1200

func TestPublishLargeFile(t *testing.T) {
	t.Parallel()
	h := startCtl(t, false)
	lines := make([]string, 0, ctlLargeEvents+1)
	lines = append(lines, line(eventstest.RenderCreated(ctlProject, ctlRender).WithID("ev-render")))
	for i := 1; i < ctlLargeEvents; i++ {
		lines = append(lines, line(eventstest.ShareViewed(ctlProject, ctlRender, "share-1").With("viewedAt", "2026-06-05T11:00:00Z").WithID(fmt.Sprintf("ev-view-%d", i))))
	}
	out, _, err := h.run(t, "", "publish", "-file", writeLines(t, lines...))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if want := fmt.Sprintf("%d stored, 0 duplicates", ctlLargeEvents); !strings.Contains(out, want) {
		t.Fatalf("output %q lacks %q", out, want)
	}
	st := h.streamState(t, events.Stream)
	if st.Msgs != ctlLargeEvents || st.LastSeq != ctlLargeEvents {
		t.Fatalf("stream holds %d events up to seq %d, want %d", st.Msgs, st.LastSeq, ctlLargeEvents)
	}
	// Order is kept: the last line is the last message.
	s, _ := h.js.Stream(context.Background(), events.Stream)
	m, err := s.GetMsg(context.Background(), ctlLargeEvents)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Header.Get(jetstream.MsgIDHeader), fmt.Sprintf("ev-view-%d", ctlLargeEvents-1); got != want {
		t.Fatalf("last message is %q, want %q", got, want)
	}
}

var (
	keyLine   = regexp.MustCompile(`(?m)^api key\s+(\S+)$`)
	keyIDLine = regexp.MustCompile(`(?m)^key id\s+(\S+)$`)
)

func TestKeys(t *testing.T) {
	t.Parallel()
	h := startCtl(t, true)
	ctx := context.Background()

	out, stderr, err := h.run(t, "", "keys", "create", "-project", ctlProject)
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	km, im := keyLine.FindStringSubmatch(out), keyIDLine.FindStringSubmatch(out)
	if km == nil || im == nil {
		t.Fatalf("keys create printed no key or key id:\n%s", out)
	}
	key, keyID := km[1], im[1]
	if !regexp.MustCompile(`^ck_live_[0-9A-Za-z]{43}$`).MatchString(key) {
		t.Fatalf("minted key has the form %q, want ck_live_ and 43 base62 digits", strings.Repeat("x", len(key)))
	}
	if strings.Count(out, key) != 1 || strings.Contains(stderr, key) {
		t.Fatal("the key must be printed exactly once, on stdout only")
	}
	hash := events.KeyHash(key)

	polltest.WaitFor(t, 10*time.Second, func() error {
		k, err := h.store.Key(ctx, hash)
		if err != nil {
			return err
		}
		if want := (readmodel.Key{ID: keyID, ProjectID: ctlProject, Environment: "live"}); k != want {
			return fmt.Errorf("key = %+v, want %+v", k, want)
		}
		return nil
	})

	// The stream holds the hash and never the plaintext.
	s, err := h.js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, events.Subject(events.TypeAPIKeyCreated, keyID))
	if err != nil {
		t.Fatalf("apikey.created not in the stream: %v", err)
	}
	if bytes.Contains(m.Data, []byte(key)) || bytes.Contains(m.Data, []byte(key[len("ck_live_"):])) {
		t.Fatal("the plaintext key is in the stream")
	}
	if !bytes.Contains(m.Data, []byte(`"keyHash":"`+hash+`"`)) {
		t.Fatal("the stream's apikey.created does not carry the key's hash")
	}

	t.Run("revoke", func(t *testing.T) {
		if _, _, err := h.run(t, "", "keys", "revoke", "-project", ctlProject, keyID); err != nil {
			t.Fatalf("keys revoke: %v", err)
		}
		polltest.WaitFor(t, 10*time.Second, func() error {
			k, err := h.store.Key(ctx, hash)
			if err != nil {
				return err
			}
			if !k.Revoked {
				return errors.New("key not revoked yet")
			}
			return nil
		})
	})

	t.Run("test key with its own id", func(t *testing.T) {
		out, _, err := h.run(t, "", "keys", "create", "-project", ctlProject, "-env", "test", "-key-id", "key_ci")
		if err != nil {
			t.Fatalf("keys create: %v", err)
		}
		km := keyLine.FindStringSubmatch(out)
		if km == nil || !strings.HasPrefix(km[1], "ck_test_") {
			t.Fatal("keys create -env test did not print a ck_test_ key")
		}
		polltest.WaitFor(t, 10*time.Second, func() error {
			k, err := h.store.Key(ctx, events.KeyHash(km[1]))
			if err != nil {
				return err
			}
			if k.ID != "key_ci" || k.Environment != "test" {
				return fmt.Errorf("key = %+v, want id key_ci in test", k)
			}
			return nil
		})
	})

	t.Run("invalid", func(t *testing.T) {
		before := h.streamState(t, events.Stream).Msgs
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"missing project", []string{"keys", "create"}, "-project is required"},
			{"project not a uuid", []string{"keys", "create", "-project", "acme"}, "-project:"},
			{"key id with a dot", []string{"keys", "create", "-project", ctlProject, "-key-id", "ops.key"}, "-key-id:"},
			{"unknown env", []string{"keys", "create", "-project", ctlProject, "-env", "prod"}, "-env / CRAFTKIT_ENV"},
			{"revoke without key id", []string{"keys", "revoke", "-project", ctlProject}, "want the key id"},
			{"revoke key id with a space", []string{"keys", "revoke", "-project", ctlProject, "a b"}, "key id argument:"},
			{"unknown subcommand", []string{"keys", "rotate"}, `unknown subcommand "rotate"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, _, err := h.run(t, "", tc.args...)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error = %v, want one containing %q", err, tc.want)
				}
				if strings.Contains(out, "ck_") {
					t.Fatal("a failed keys create printed a key")
				}
			})
		}
		if got := h.streamState(t, events.Stream).Msgs; got != before {
			t.Fatalf("stream went from %d to %d events: an invalid command published", before, got)
		}
	})
}

// publishCtl publishes e on its subject with its id as Nats-Msg-Id,
// bypassing validation (to make dead letters), and returns its sequence.
func publishCtl(t *testing.T, h *ctlHarness, e eventstest.Event) uint64 {
	t.Helper()
	return natstest.Publish(t, h.js, e.Subject(), e.Body(), e.ID)
}

func TestStatus(t *testing.T) {
	t.Parallel()
	h := startCtl(t, true)
	publishCtl(t, h, eventstest.RenderCreated(ctlProject, ctlRender).WithID("ev-render"))
	publishCtl(t, h, ctlShare("share-1", "fax").WithID("ev-bad"))
	last := publishCtl(t, h, ctlShare("share-2", "link").WithID("ev-share"))

	var rep statusReport
	polltest.WaitFor(t, 15*time.Second, func() error {
		out, _, err := h.run(t, "", "status", "-json")
		if err != nil {
			return err
		}
		rep = statusReport{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return fmt.Errorf("status -json: %v\n%s", err, out)
		}
		switch {
		case rep.Active == nil:
			return errors.New("no active generation yet")
		case rep.Active.Position != last || rep.Active.Lag != 0:
			return fmt.Errorf("active at %d with lag %d, want %d and 0", rep.Active.Position, rep.Active.Lag, last)
		case rep.DeadLetters == nil || *rep.DeadLetters != 1:
			return fmt.Errorf("dead letters = %v, want 1", rep.DeadLetters)
		}
		return nil
	})
	if got, want := rep.Stream.LastSeq, last; got != want {
		t.Fatalf("stream last seq = %d, want %d", got, want)
	}
	if !rep.LeaseHeld || rep.Generations[rep.Active.Gen] == 0 || rep.MaxmemoryPolicy != "noeviction" || !rep.EvictionSafe {
		t.Fatalf("status = %+v, want the lease held, keys in the active generation and a safe noeviction policy", rep)
	}
	if len(rep.Partitions) != 8 || rep.PartitionCount != 8 {
		t.Fatalf("partitions %+v of %d, want 8", rep.Partitions, rep.PartitionCount)
	}
	for q, p := range rep.Partitions {
		if p.Partition != q || p.Owner == "" || p.Position != last || p.Lag != 0 {
			t.Errorf("partition %d: %+v, want an owner at position %d, lag 0", q, p, last)
		}
	}

	out, _, err := h.run(t, "", "status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(fmt.Sprintf(`stream CRAFTKIT\s+seq 1\.\.%d, %d events`, last, last)),
		regexp.MustCompile(fmt.Sprintf(`active generation\s+%s at position %d, lag 0 events`, rep.Active.Gen, last)),
		regexp.MustCompile(`(?m)^dead letters\s+1$`),
		regexp.MustCompile(`(?m)^projector\s+projecting, 8 partitions$`),
		regexp.MustCompile(fmt.Sprintf(`(?m)^  partition 7\s+owner \S+, position %d, lag 0$`, last)),
		regexp.MustCompile(`redis maxmemory-policy\s+noeviction \(safe\)`),
	} {
		if !want.MatchString(out) {
			t.Fatalf("status output lacks %s:\n%s", want, out)
		}
	}
}

func TestDeadletter(t *testing.T) {
	t.Parallel()
	h := startCtl(t, true)
	ctx := context.Background()
	upperHash := strings.Repeat("AB", 32) // not lowercase: apikey.created is rejected
	publishCtl(t, h, eventstest.RenderCreated(ctlProject, ctlRender).WithID("ev-render"))
	shareSeq := publishCtl(t, h, ctlShare("share-1", "fax").WithID("ev-share-bad"))
	publishCtl(t, h, eventstest.APIKeyCreated(ctlProject, "key_bad", "", "live").With("keyHash", upperHash).WithID("ev-key-bad"))
	polltest.WaitFor(t, 15*time.Second, func() error {
		if n := h.streamState(t, events.DeadLetterStream).Msgs; n != 2 {
			return fmt.Errorf("%d dead letters, want 2", n)
		}
		return nil
	})

	t.Run("list", func(t *testing.T) {
		out, _, err := h.run(t, "", "deadletter", "list")
		if err != nil {
			t.Fatalf("deadletter list: %v", err)
		}
		row := regexp.MustCompile(fmt.Sprintf(`(?m)^1\s+\S+\s+%s\s+%d\s+events: data\.channel: `,
			regexp.QuoteMeta(events.Subject(events.TypeShareCreated, ctlRender)), shareSeq))
		if !row.MatchString(out) {
			t.Fatalf("list lacks the share's dead letter with its reason:\n%s", out)
		}
		if !strings.Contains(out, "events: data.keyHash:") {
			t.Fatalf("list lacks the key's dead letter:\n%s", out)
		}
		if strings.Contains(strings.ToLower(out), strings.ToLower(upperHash)) {
			t.Fatal("list shows a key hash")
		}
	})

	t.Run("list bodies masked", func(t *testing.T) {
		out, _, err := h.run(t, "", "deadletter", "list", "-show-body", "-json")
		if err != nil {
			t.Fatalf("deadletter list: %v", err)
		}
		got := decodeDeadLetters(t, out)
		if len(got) != 2 {
			t.Fatalf("got %d dead letters, want 2:\n%s", len(got), out)
		}
		if got[0].OriginalSeq != shareSeq || got[0].EventID != "ev-share-bad" || !strings.Contains(got[0].Body, `"channel":"fax"`) {
			t.Fatalf("first dead letter = %+v, want the share event of seq %d with its body", got[0], shareSeq)
		}
		if strings.Contains(strings.ToLower(out), strings.ToLower(upperHash)) || !strings.Contains(got[1].Body, `"keyHash":"***"`) {
			t.Fatalf("the key hash is not masked: %s", got[1].Body)
		}
	})

	t.Run("replay", func(t *testing.T) {
		bad := writeLines(t, `{"id":"ev-share-bad"}`)
		if _, _, err := h.run(t, "", "deadletter", "replay", "-all", "-file", bad); err == nil || !strings.Contains(err.Error(), "line 1: events:") {
			t.Fatalf("replay with a bad fixed file: error = %v, want line 1 named", err)
		}
		if n := h.streamState(t, events.DeadLetterStream).Msgs; n != 2 {
			t.Fatalf("%d dead letters after a refused replay, want 2", n)
		}

		fixed := writeLines(t, line(ctlShare("share-1", "link").WithID("ev-share-bad")))
		out, _, err := h.run(t, "", "deadletter", "replay", "-all", "-file", fixed)
		if err == nil || !strings.Contains(err.Error(), "1 dead letters kept") {
			t.Fatalf("replay error = %v, want the still invalid key event reported as kept", err)
		}
		for _, want := range []string{`replayed the fixed event "ev-share-bad"`, "fresh Nats-Msg-Id", "still invalid: events: data.keyHash:", "replayed 1 (1 fixed, 0 original), kept 1"} {
			if !strings.Contains(out, want) {
				t.Fatalf("replay output lacks %q:\n%s", want, out)
			}
		}
		h.waitShares(t, 10*time.Second, 1, "the replayed one")
		if n := h.streamState(t, events.DeadLetterStream).Msgs; n != 1 {
			t.Fatalf("%d dead letters after the replay, want 1 (the key event)", n)
		}
		if _, _, err := h.run(t, "", "deadletter", "replay", "-seq", "1"); err == nil || !strings.Contains(err.Error(), "1 not found") {
			t.Fatalf("replay of a deleted dead letter: error = %v, want not found", err)
		}
	})

	t.Run("replay original that now decodes", func(t *testing.T) {
		// A dead letter whose body is valid, as one left by an older
		// projector with a bug would be.
		view := line(eventstest.ShareViewed(ctlProject, ctlRender, "share-1").With("viewedAt", "2026-06-05T11:00:00Z").WithID("ev-view"))
		subject := events.Subject(events.TypeShareViewed, ctlRender)
		msg := nats.NewMsg(events.DeadLetterPre + subject)
		msg.Data = []byte(view)
		msg.Header.Set(projector.HeaderReason, "events: data: some rule since relaxed")
		msg.Header.Set(projector.HeaderField, "data")
		msg.Header.Set(projector.HeaderSubject, subject)
		msg.Header.Set(projector.HeaderSeq, "999")
		ack, err := h.js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := h.run(t, "", "deadletter", "replay", "-seq", fmt.Sprint(ack.Sequence))
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		if want := `replayed the original event "ev-view"`; !strings.Contains(out, want) {
			t.Fatalf("replay output lacks %q:\n%s", want, out)
		}
		polltest.WaitFor(t, 10*time.Second, func() error {
			l, err := h.store.List(ctx, ctlProject, ctlRender, nil)
			if err != nil {
				return err
			}
			for s, err := range l.Shares() {
				if err != nil {
					return err
				}
				if s.ClickCount != 1 {
					return fmt.Errorf("share %s has %d clicks: the replayed view is not counted", s.ID, s.ClickCount)
				}
			}
			return nil
		})
	})
}

func TestPublishProgress(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newPublishProgress(&buf, "publish", 200)
	p.update(10) // within the first second: nothing yet
	if buf.Len() != 0 {
		t.Fatalf("progress after 0s = %q, want nothing", buf.String())
	}
	p.start, p.last = p.start.Add(-2*time.Second), p.last.Add(-2*time.Second)
	p.update(100)
	if got, want := buf.String(), "publish: 100/200 events (50%), 50 events/s, eta 2s\n"; got != want {
		t.Fatalf("progress = %q, want %q", got, want)
	}
}

func TestEventMsgSubject(t *testing.T) {
	t.Parallel()
	upper := strings.ToUpper(ctlRender)
	sent := strings.Replace(line(eventstest.RenderCreated(ctlProject, ctlRender).WithID("ev-1")), ctlRender, upper, 1)
	msg, err := eventMsg([]byte(sent))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := msg.Subject, events.Subject(events.TypeRenderCreated, ctlRender); got != want {
		t.Fatalf("subject = %q, want the lowercase %q", got, want)
	}
	if _, err := eventMsg([]byte(`[1]`)); err == nil || !strings.Contains(err.Error(), "events: $:") {
		t.Fatalf("eventMsg of an array: error = %v, want a DecodeError on $", err)
	}
}

func TestMaskSecrets(t *testing.T) {
	t.Parallel()
	hash := strings.Repeat("0a", 32)
	for _, tc := range []struct{ name, in, want string }{
		{"keyHash member", `{"keyHash": "x\"y"}`, `{"keyHash": "***"}`},
		{"hash elsewhere", `{"note":"` + hash + `"}`, `{"note":"***"}`},
		{"plaintext key", `not json ck_live_abcDEF123`, `not json ***`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := maskSecrets([]byte(tc.in)); got != tc.want {
				t.Fatalf("maskSecrets(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// decodeDeadLetters reads the JSON lines of `deadletter list -json`.
func decodeDeadLetters(t testing.TB, out string) []deadLetter {
	t.Helper()
	var got []deadLetter
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var d deadLetter
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("deadletter list -json: %v", err)
		}
		got = append(got, d)
	}
	return got
}
