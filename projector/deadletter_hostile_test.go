package projector_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
)

// TestDeadLetterControlHeaders publishes malformed events carrying NATS
// control headers that the CRAFTKIT stream accepted but that would steer or
// refuse a copy sent with them (and a header name the Go client refuses to
// send), each followed by a good event: the good one is applied, and the bad
// one is dead-lettered once, its headers kept under the projector's names.
// The old projector re-sent the original headers and retried the refused
// publish forever, so the good event was never applied.
func TestDeadLetterControlHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// headers are the bad event's headers, worked out from the stream
		// s just before it is published on subject.
		headers func(t *testing.T, s jetstream.Stream, subject string) nats.Header
		raw     bool // publish over a raw connection (the Go client refuses the header)
	}{
		{"Nats-Expected-Stream", func(*testing.T, jetstream.Stream, string) nats.Header {
			return nats.Header{"Nats-Expected-Stream": {events.Stream}}
		}, false},
		{"Nats-Expected-Last-Sequence", func(t *testing.T, s jetstream.Stream, _ string) nats.Header {
			return nats.Header{"Nats-Expected-Last-Sequence": {itoa(streamLastSeq(t, s))}}
		}, false},
		{"Nats-Expected-Last-Subject-Sequence", func(t *testing.T, s jetstream.Stream, subject string) nats.Header {
			m, err := s.GetLastMsgForSubject(context.Background(), subject)
			if err != nil {
				t.Fatal(err)
			}
			return nats.Header{"Nats-Expected-Last-Subject-Sequence": {itoa(m.Sequence)}}
		}, false},
		{"Nats-Expected-Last-Msg-Id", func(t *testing.T, s jetstream.Stream, _ string) nats.Header {
			m, err := s.GetMsg(context.Background(), streamLastSeq(t, s))
			if err != nil {
				t.Fatal(err)
			}
			return nats.Header{"Nats-Expected-Last-Msg-Id": {m.Header.Get(jetstream.MsgIDHeader)}}
		}, false},
		{"Nats-Rollup", func(*testing.T, jetstream.Stream, string) nats.Header {
			return nats.Header{"Nats-Rollup": {"sub"}}
		}, false},
		{"Nats-TTL", func(*testing.T, jetstream.Stream, string) nats.Header {
			return nats.Header{"Nats-TTL": {"1h"}}
		}, false},
		{"a header name the Go client refuses", func(*testing.T, jetstream.Stream, string) nats.Header {
			return nats.Header{"X/Bad(Name)": {"100% \x01 odd\xff"}}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			// An operator may allow rollups and per-message TTLs on
			// CRAFTKIT; the dead-letter stream allows neither.
			s, err := e.js.Stream(ctx, events.Stream)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.CachedInfo().Config
			cfg.AllowRollup, cfg.AllowMsgTTL = true, true
			if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			project, render := eventstest.NewUUID(), eventstest.NewUUID()
			subject := events.Subject(events.TypeShareViewed, render)
			r := e.start(t)
			e.waitApplied(t, e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z"), eventstest.ShareViewed(project, render, "s1")), r)
			// A dead letter already on the copy's subject, so that expected
			// sequences and ids of the two streams differ.
			e.waitApplied(t, e.publishBad(t, render, "an earlier bad event"), r)

			h := tt.headers(t, s, subject)
			h.Set(jetstream.MsgIDHeader, "bad-"+eventstest.NewUUID())
			h.Add("X-Trace", "a")
			h.Add("X-Trace", "b")
			body := []byte(`{"id": "not json`)
			var seq uint64
			if tt.raw {
				seq = rawPublish(t, e, subject, h, body)
			} else {
				ack, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: body})
				if err != nil {
					t.Fatalf("publish the bad event: %v", err)
				}
				seq = ack.Sequence
			}
			e.waitApplied(t, e.publish(t, eventstest.ShareViewed(project, render, "s1")), r)

			e.wantClicks(t, project, render, map[string]int{"s1": 2})
			dl := onlyDeadLetterOf(t, e, seq)
			checkDeadLetter(t, dl, subject, body, h.Get(jetstream.MsgIDHeader), seq, "$")
			checkCopiedHeaders(t, dl, h)
			if got := len(e.deadLetters(t)); got != 2 {
				t.Fatalf("%d dead letters, want 2", got)
			}
		})
	}
}

func streamLastSeq(t testing.TB, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// onlyDeadLetterOf returns the one dead letter of the event at seq, and
// fails when there is none or more than one.
func onlyDeadLetterOf(t testing.TB, e *env, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	var found []*jetstream.RawStreamMsg
	for _, m := range e.deadLetters(t) {
		if m.Header.Get(projector.HeaderSeq) == itoa(seq) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("event at seq %d has %d dead letters, want 1", seq, len(found))
	}
	return found[0]
}

// checkCopiedHeaders checks that the dead letter's only NATS header is its
// own Nats-Msg-Id and that it keeps every original header, and only those,
// under the projector's names.
func checkCopiedHeaders(t testing.TB, dl *jetstream.RawStreamMsg, orig nats.Header) {
	t.Helper()
	got := map[string][]string{}
	for k, vs := range dl.Header {
		switch {
		case k == jetstream.MsgIDHeader:
			if !strings.HasPrefix(vs[0], "sharesd-deadletter-") {
				t.Errorf("dead letter's Nats-Msg-Id = %q, want the projector's own", vs[0])
			}
		case strings.HasPrefix(strings.ToLower(k), "nats-"):
			t.Errorf("dead letter carries NATS header %s: %q", k, vs)
		case strings.HasPrefix(k, projector.HeaderOriginalPrefix):
			name := projector.UnescapeHeader(strings.TrimPrefix(k, projector.HeaderOriginalPrefix))
			for _, v := range vs {
				got[name] = append(got[name], projector.UnescapeHeader(v))
			}
		}
	}
	want := map[string][]string{}
	for k, vs := range orig {
		if k != jetstream.MsgIDHeader {
			want[k] = vs
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dead letter's copied headers = %q, want %q", got, want)
	}
}

// rawPublish publishes a message whose header the Go client would refuse
// to encode, over a plain TCP connection, and returns its stream sequence.
func rawPublish(t testing.TB, e *env, subject string, h nats.Header, body []byte) uint64 {
	t.Helper()
	before := e.lastSeq(t)
	conn, err := net.DialTimeout("tcp", e.ns.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	if _, err := rd.ReadString('\n'); err != nil { // INFO
		t.Fatal(err)
	}
	var hdr strings.Builder
	hdr.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			hdr.WriteString(k + ": " + v + "\r\n")
		}
	}
	hdr.WriteString("\r\n")
	fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"protocol\":1}\r\n")
	fmt.Fprintf(conn, "HPUB %s %d %d\r\n%s%s\r\nPING\r\n", subject, hdr.Len(), hdr.Len()+len(body), hdr.String(), body)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("raw publish: %v", err)
		}
		if strings.HasPrefix(line, "PONG") {
			break
		}
		if strings.HasPrefix(line, "-ERR") {
			t.Fatalf("raw publish: %s", line)
		}
	}
	var seq uint64
	polltest.WaitFor(t, 5*time.Second, func() error {
		if seq = e.lastSeq(t); seq <= before {
			return fmt.Errorf("raw publish not stored yet")
		}
		return nil
	})
	return seq
}

// TestDeadLetterCutToFit publishes malformed events that fill what the
// server or the dead-letter stream takes: the dead letter is cut to fit,
// says what it lacks, and the good event behind it is applied. The old
// projector's copy (the body plus its headers) was refused, and it retried
// forever.
func TestDeadLetterCutToFit(t *testing.T) {
	t.Parallel()
	t.Run("max payload", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		msg := nats.NewMsg(events.Subject(events.TypeShareViewed, eventstest.NewUUID()))
		msg.Header.Set(jetstream.MsgIDHeader, "bad-"+eventstest.NewUUID())
		msg.Header.Set("X-Origin", "a publisher")
		msg.Data = []byte(strings.Repeat("x", int(e.nc.MaxPayload())-msg.Size()+len(msg.Subject)))
		checkCut(t, e, msg, 0)
	})
	t.Run("dead-letter stream's max message size", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		const maxSize = 4096
		updateDeadLetterStream(t, e, func(c *jetstream.StreamConfig) { c.MaxMsgSize = maxSize })
		msg := nats.NewMsg(events.Subject(events.TypeShareViewed, eventstest.NewUUID()))
		msg.Header.Set(jetstream.MsgIDHeader, "bad-"+eventstest.NewUUID())
		msg.Data = []byte(strings.Repeat("x", 60<<10))
		checkCut(t, e, msg, maxSize)
	})
}

// checkCut publishes the bad msg and a good event, and checks that msg's
// dead letter holds the start of its body, within limit bytes when set.
func checkCut(t *testing.T, e *env, msg *nats.Msg, limit int) {
	t.Helper()
	ack, err := e.js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatalf("publish the bad event: %v", err)
	}
	r := e.start(t)
	project, render := eventstest.NewUUID(), eventstest.NewUUID()
	e.waitApplied(t, e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z")), r)
	e.wantClicks(t, project, render, map[string]int{"s1": 0})

	dl := onlyDeadLetterOf(t, e, ack.Sequence)
	if got, want := dl.Header.Get(projector.HeaderTruncated), "body "+itoa(uint64(len(msg.Data))); got != want {
		t.Fatalf("%s = %q, want %q", projector.HeaderTruncated, got, want)
	}
	if len(dl.Data) == 0 || len(dl.Data) >= len(msg.Data) || string(dl.Data) != string(msg.Data[:len(dl.Data)]) {
		t.Fatalf("dead letter body has %d bytes, want a non-empty start of the original's %d", len(dl.Data), len(msg.Data))
	}
	size := (&nats.Msg{Header: dl.Header, Data: dl.Data}).Size()
	if limit > 0 && size > limit {
		t.Fatalf("dead letter is %d bytes, want at most %d", size, limit)
	}
	if got := dl.Header.Get(projector.HeaderOriginalPrefix + "X-Origin"); got != msg.Header.Get("X-Origin") {
		t.Fatalf("dead letter's X-Origin = %q, want %q", got, msg.Header.Get("X-Origin"))
	}
	if got := metric(t, r.reg, "sharesd_events_deadlettered_total", "reason", "malformed"); got != 1 {
		t.Fatalf("sharesd_events_deadlettered_total{reason=malformed} = %v, want 1", got)
	}
}

// updateDeadLetterStream changes the dead-letter stream's configuration.
func updateDeadLetterStream(t testing.TB, e *env, f func(*jetstream.StreamConfig)) {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	f(&cfg)
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("update %s: %v", events.DeadLetterStream, err)
	}
}

// TestDeadLetterLongSubject publishes a malformed event on a subject so
// long that the dead-letter subject (prefixed) would overflow the server's
// protocol line: the dead letter goes under a cut subject, with the whole
// original subject in its header. The old projector's publish made the
// server close the connection, and it retried forever.
func TestDeadLetterLongSubject(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	subject := events.Subject(events.TypeShareViewed, eventstest.NewUUID()) + "." + strings.Repeat("x", 4000)
	if err := e.nc.Publish(subject, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	polltest.WaitFor(t, 5*time.Second, func() error {
		if seq = e.lastSeq(t); seq == 0 {
			return fmt.Errorf("long subject not stored")
		}
		return nil
	})
	r := e.start(t)
	project, render := eventstest.NewUUID(), eventstest.NewUUID()
	e.waitApplied(t, e.publish(t, eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z")), r)
	dl := onlyDeadLetterOf(t, e, seq)
	if got := dl.Header.Get(projector.HeaderSubject); got != subject {
		t.Fatalf("dead letter's %s has %d bytes, want the original subject's %d", projector.HeaderSubject, len(got), len(subject))
	}
	if !strings.HasPrefix(dl.Subject, events.DeadLetterPre+events.SubjectPre) || len(dl.Subject) > 1024 {
		t.Fatalf("dead letter subject has %d bytes (%.40q…), want at most 1024 under %s", len(dl.Subject), dl.Subject, events.DeadLetterPre)
	}
}
