package projector

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// These tests call the dead-letter code directly, with NATS only (it never
// touches Redis).

func newDeadLetterer(t *testing.T) (*Projector, jetstream.JetStream) {
	t.Helper()
	_, _, js := natstest.Start(t, EnsureStreams)
	return New(js, nil, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewRegistry()), Config{}), js
}

// dlCount is the number of messages in the dead-letter stream.
func dlCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// TestDeadLetterRawIsTheSameCopy dead-letters one event as the consumer
// delivers it and as read back by sequence, at a later trigger: both make
// the same copy (the second is a duplicate), and the trigger is recorded.
func TestDeadLetterRawIsTheSameCopy(t *testing.T) {
	t.Parallel()
	p, js := newDeadLetterer(t)
	ctx := context.Background()
	subject := events.Subject(events.TypeShareViewed, "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
	seq := natstest.Publish(t, js, subject, []byte("held"), "ev-held")
	cons, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next()
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := p.loadDeadLetters(ctx, readmodel.Control{})
	if err != nil {
		t.Fatal(err)
	}
	r := run{dead: dead}
	if err := p.deadLetterRaw(ctx, r, raw, seq+5, "project_mismatch", "projectId", "held"); err != nil {
		t.Fatal(err)
	}
	if err := p.deadLetter(ctx, run{}, msg, seq, "project_mismatch", "projectId", "held"); err != nil {
		t.Fatal(err)
	}
	if n := dlCount(t, js); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	dls, err := js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := dls.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dl.Header.Get(HeaderTrigger), itoa(seq+5); got != want {
		t.Fatalf("%s = %q, want %q", HeaderTrigger, got, want)
	}
	if got := dl.Header.Get(HeaderMsgID); got != "ev-held" {
		t.Fatalf("%s = %q, want ev-held", HeaderMsgID, got)
	}
}

// TestDeadLetterCrashBeforeMark publishes a dead letter and "crashes"
// before the batch raises the mark: the next run finds the dead letter at
// the stream's end and does not publish it again, even after the
// dead-letter stream's duplicate window.
func TestDeadLetterCrashBeforeMark(t *testing.T) {
	t.Parallel()
	p, js := newDeadLetterer(t)
	ctx := context.Background()
	const window = 100 * time.Millisecond
	s, err := js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = window
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	subject := events.Subject(events.TypeShareViewed, "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
	seq := natstest.Publish(t, js, subject, []byte("bad"), "ev-bad")
	orig, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := orig.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.loadDeadLetters(ctx, readmodel.Control{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.deadLetterRaw(ctx, run{dead: first}, raw, seq, "malformed", "$", "bad"); err != nil {
		t.Fatal(err)
	}
	// No markHandled: the process died here.
	<-time.After(window) // the duplicate window's length, not a synchronisation

	again, err := p.loadDeadLetters(ctx, readmodel.Control{})
	if err != nil {
		t.Fatal(err)
	}
	if again.mark != 0 || !again.tail[seq] {
		t.Fatalf("after the crash: mark %d, tail %v; want 0 and seq %d found at the end of the stream", again.mark, again.tail, seq)
	}
	r := run{dead: again}
	if err := p.deadLetterRaw(ctx, r, raw, seq, "malformed", "$", "bad"); err != nil {
		t.Fatal(err)
	}
	if n := dlCount(t, js); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}

	// A batch that dead-letters raises the mark; the next run reads it.
	third := natstest.Publish(t, js, subject, []byte("bad too"), "ev-bad-2")
	raw, err = orig.GetMsg(ctx, third)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.deadLetterRaw(ctx, r, raw, third, "malformed", "$", "bad"); err != nil {
		t.Fatal(err)
	}
	if err := p.markHandled(ctx, r, third); err != nil {
		t.Fatal(err)
	}
	last, err := p.loadDeadLetters(ctx, readmodel.Control{})
	if err != nil {
		t.Fatal(err)
	}
	if last.mark != third || len(last.tail) != 0 {
		t.Fatalf("after the batch: mark %d, tail %v; want %d and nothing above it", last.mark, last.tail, third)
	}
}

// TestNewCopy builds dead letters of random originals within random
// limits: each fits, sends no
// original header as a NATS header, keeps every header it has room for
// (escaped, so that it comes back unchanged), keeps the start of the body,
// and says what it lacks.
func TestNewCopy(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	randString := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	names := []string{"Nats-Expected-Stream", "Nats-Rollup", "Nats-TTL", "Nats-Msg-Id", "Nats-Batch-Id", "X-Trace", "X/Odd:Name", " lead", "100%", "Ünï"}
	for i := range 2000 {
		o := origin{subject: "craftkit.share.viewed.x", seq: uint64(i + 1), time: time.Unix(0, int64(i)), header: nats.Header{}}
		for range rng.IntN(6) {
			name := names[rng.IntN(len(names))]
			if rng.IntN(3) == 0 {
				name = randString(1 + rng.IntN(20))
			}
			o.header[name] = append(o.header[name], randString(rng.IntN(1+rng.IntN(3)*3000)))
		}
		o.data = []byte(randString(rng.IntN(1 + rng.IntN(2)*20000)))
		limit := []int{4096, 16 << 10, 1 << 20}[rng.IntN(3)]
		minimal := rng.IntN(4) == 0
		out := newCopy(o, "2026-01-01T00:00:00Z", o.seq, "malformed", "$", randString(rng.IntN(2000)), limit, minimal)

		if size := headerSize(out.Header) + len(out.Data); size > limit || headerSize(out.Header) > maxHeaderBlock {
			t.Fatalf("copy %d: %d bytes (headers %d), want at most %d", i, size, headerSize(out.Header), limit)
		}
		kept := 0
		for k, vs := range out.Header {
			if !validHeaderKey(k) {
				t.Fatalf("copy %d: header name %q cannot be sent", i, k)
			}
			if strings.HasPrefix(k, "Nats-") && k != jetstream.MsgIDHeader {
				t.Fatalf("copy %d: carries NATS header %s", i, k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") || strings.TrimSpace(v) != v {
					t.Fatalf("copy %d: header %s value %q would not survive", i, k, v)
				}
			}
			name, ok := strings.CutPrefix(k, HeaderOriginalPrefix)
			if k == HeaderMsgID {
				name, ok = jetstream.MsgIDHeader, true
			}
			if !ok {
				continue
			}
			name = UnescapeHeader(name)
			for _, v := range vs {
				if got := UnescapeHeader(v); !contains(o.header[name], got) {
					t.Fatalf("copy %d: header %q = %q is not one of the original's %q", i, name, got, o.header[name])
				}
				kept++
			}
		}
		total := 0
		for _, vs := range o.header {
			total += len(vs)
		}
		note := out.Header.Get(HeaderTruncated)
		if dropped := total - kept; dropped > 0 != strings.Contains(note, "headers "+itoa(uint64(dropped))) {
			t.Fatalf("copy %d: kept %d of %d original headers, note %q", i, kept, total, note)
		}
		if !strings.HasPrefix(string(o.data), string(out.Data)) {
			t.Fatalf("copy %d: body is not the start of the original", i)
		}
		if cut := len(out.Data) < len(o.data); cut != strings.HasPrefix(note, "body "+itoa(uint64(len(o.data)))) {
			t.Fatalf("copy %d: body %d of %d bytes, note %q", i, len(out.Data), len(o.data), note)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// validHeaderKey is the Go client's rule for a header name.
func validHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 33 || c > 126 || strings.IndexByte(`"()/,:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
