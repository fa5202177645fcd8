package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/projector"
	refmodel "github.com/craftkit/sharesd/projector/model"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// The stream fuzzer's budget: run it longer with
// go test ./projector -run TestHostileStream -args -hostile.duration=10m
// (make fuzz-stream) and replay a failure with -hostile.seed=<seed>.
var (
	hostileDuration = flag.Duration("hostile.duration", 15*time.Second, "stream fuzzer: how long to publish")
	hostileSeed     = flag.Uint64("hostile.seed", 0, "stream fuzzer: seed (0: from the clock, logged)")
)

// TestHostileStream publishes, for a bounded time, random messages into a
// real stream — random bytes and JSON, truncated and oversized events,
// invalid UTF-8, sizes up to the server's max payload, random headers
// including every Nats-* header the server knows — interleaved with good
// events, while a projector runs and is restarted now and then. The server
// refuses some publishes because of their headers; only what the stream
// stored counts. Afterwards the projector has caught up with the stream
// within a bound, the API answers exactly what the reference model folds
// from the stored messages (so every good event counted once), and the
// dead-letter stream holds each event the model rejects exactly once, and
// nothing else.
//
// A run longer than a round (15s) is a sequence of rounds, each on new
// servers with the next seed, so the stream read back stays small.
func TestHostileStream(t *testing.T) {
	t.Parallel()
	seed := *hostileSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	duration := *hostileDuration
	if testing.Short() {
		duration = min(duration, 5*time.Second)
	}
	const round = 15 * time.Second
	end := time.Now().Add(duration)
	for i := uint64(0); i == 0 || time.Until(end) > round/3; i++ {
		d := min(round, max(time.Until(end), time.Second))
		ok := t.Run("seed="+strconv.FormatUint(seed+i, 10), func(t *testing.T) { hostileRound(t, seed+i, d) })
		if !ok {
			return
		}
	}
}

// hostileRound runs one round of TestHostileStream on new servers.
func hostileRound(t *testing.T, seed uint64, duration time.Duration) {
	t.Logf("seed %d", seed)
	defer func() {
		if t.Failed() {
			t.Logf("replay with: go test ./projector -run 'TestHostileStream$' -args -hostile.seed=%d -hostile.duration=%v", seed, duration)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 0x0f1e))
	ns, pnc, js := natstest.Start(t, projector.EnsureStreams)
	var slow atomic.Int64 // the projector's connection dropping messages
	pnc.SetErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			slow.Add(1)
		}
	})
	rdb := redistest.Start(t).Client(t)
	w := &propWorld{t: t, js: js, store: readmodel.New(rdb, readmodel.DefaultHorizon), horizon: readmodel.DefaultHorizon, rng: rng, procs: 1}
	cfg := projector.Config{
		BatchSize: []int{1, 7, 64, 512}[rng.IntN(4)],
		// 1 is raised to one message of the max payload: a pull at a time.
		MaxFetchBytes: []int{0, 1, 256 << 10}[rng.IntN(3)],
		LeaseTTL:      time.Second, DropGrace: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	t.Logf("projector config: batch %d, max fetch bytes %d", cfg.BatchSize, cfg.MaxFetchBytes)
	hostileStart(w, cfg)
	t.Cleanup(w.stop)

	// The fuzzer publishes on a connection of its own, as a hostile client
	// would: nothing it does to its connection touches the projector's.
	nc, pub := natstest.Connect(t, ns)

	g := newPropGen(rng, seed)
	h := &hostileGen{rng: rng, g: g, maxPayload: int(nc.MaxPayload()), acked: map[uint64]bool{}}
	for _, ev := range g.stream(len(g.projects)) { // the projects' query keys
		h.publish(t, pub, ev.subject, ev.data, nil, ev.msgID)
	}
	var restarts int
	end, nextRestart := time.Now().Add(duration), time.Now().Add(time.Duration(1+rng.IntN(4))*time.Second)
	for time.Now().Before(end) {
		h.step(t, pub)
		if time.Now().After(nextRestart) {
			hostileRestart(w, cfg)
			restarts++
			nextRestart = time.Now().Add(time.Duration(1+rng.IntN(4)) * time.Second)
		}
	}
	t.Logf("published %d messages (%d good, %d hostile, %d MiB), %d refused by the server or the client; %d restarts",
		h.sent, h.good, h.sent-h.good, h.bytes>>20, h.refused, restarts)

	caughtUp := time.Now()
	w.waitCaughtUp() // fails the test when lag is not 0 after 30s
	t.Logf("caught up %v after the last publish", time.Since(caughtUp).Round(time.Millisecond))
	if n, m := slow.Load(), ns.NumSlowConsumers(); n != 0 || m != 0 {
		t.Errorf("the projector's connection dropped messages %d times as a slow consumer, the server dropped %d slow consumers; want none", n, m)
	}

	ctx := context.Background()
	msgs, head, err := projector.ReadStream(ctx, js, nil)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	if uint64(len(msgs)) != head {
		t.Fatalf("read %d messages, stream head %d", len(msgs), head)
	}
	stored := make(map[uint64]bool, len(msgs))
	for _, m := range msgs {
		stored[m.Seq] = true
	}
	for seq := range h.acked {
		if !stored[seq] {
			t.Errorf("publish acknowledged at seq %d, but the stream does not hold it", seq)
		}
	}
	m := refmodel.Fold(msgs, readmodel.DefaultHorizon)
	w.checkAPI(m, g)
	origins := deadLetterOrigins(t, js)
	for seq, reason := range m.Dead {
		if n := origins[seq]; n != 1 {
			t.Errorf("event at seq %d (%s) dead-lettered %d times, want once", seq, reason, n)
		}
	}
	for seq, n := range origins {
		if _, ok := m.Dead[seq]; !ok {
			t.Errorf("event at seq %d dead-lettered %d times, but the model applies it", seq, n)
		}
	}
}

// hostileStart starts w's projector with cfg (propWorld.start picks its
// own).
func hostileStart(w *propWorld, cfg projector.Config) {
	p := projector.New(w.js, w.store, testLogger(w.t), projector.NewMetrics(prometheus.NewRegistry()), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	w.projs, w.cancel, w.done = []*projector.Projector{p}, []context.CancelFunc{cancel}, []chan error{done}
}

func hostileRestart(w *propWorld, cfg projector.Config) {
	w.stop()
	hostileStart(w, cfg)
}

// hostileGen publishes good events (propGen's) and hostile messages.
type hostileGen struct {
	rng        *rand.Rand
	g          *propGen
	maxPayload int

	acked    map[uint64]bool // sequences the stream acknowledged
	lastSeq  uint64
	lastID   string   // the last Nats-Msg-Id sent
	subjects []string // the last 20 published to

	sent, good, refused int
	bytes               int
}

// step publishes one message: most of the time the next of propGen's
// stream (good events with its own bad ones and duplicates), otherwise a
// hostile one; either may get random headers.
func (h *hostileGen) step(t testing.TB, js jetstream.JetStream) {
	if h.rng.IntN(10) < 6 {
		before := len(h.g.out)
		h.g.next()
		for _, ev := range h.g.out[before:] {
			h.good++
			var hdr nats.Header
			if h.rng.IntN(4) == 0 {
				hdr = h.headers()
			}
			h.publish(t, js, ev.subject, ev.data, hdr, ev.msgID)
		}
		return
	}
	subject, body := h.body()
	h.publish(t, js, subject, body, h.headers(), "")
}

// publish publishes one message and records its sequence when the stream
// stores it; a refusal is counted, not an error.
func (h *hostileGen) publish(t testing.TB, js jetstream.JetStream, subject string, data []byte, hdr nats.Header, msgID string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = data
	for k, vs := range hdr {
		m.Header[k] = vs
	}
	if msgID != "" && m.Header.Get(jetstream.MsgIDHeader) == "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if id := m.Header.Get(jetstream.MsgIDHeader); id != "" {
		h.lastID = id
	}
	h.subjects = append(h.subjects[max(0, len(h.subjects)-19):], subject)
	h.sent++
	h.bytes += len(data)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrNoResponders):
		// A header such as Nats-Trace-Only gets no acknowledgement; the
		// stream may or may not hold the message.
		h.refused++
	case err != nil:
		h.refused++
	default:
		h.acked[ack.Sequence] = true
		h.lastSeq = max(h.lastSeq, ack.Sequence)
	}
}

// body makes one hostile message: a subject under the stream's and a body
// that is rarely a valid event.
func (h *hostileGen) body() (string, []byte) {
	r := h.g.pick(h.g.renders)
	subject := events.Subject(events.TypeShareViewed, r)
	switch h.rng.IntN(6) {
	case 0:
		subject = events.Subject(events.Type(h.g.pick([]string{"share.created", "render.deleted", "apikey.created", "project.updated", "x"})), r)
	case 1:
		subject = events.SubjectPre + h.token() + "." + h.token()
	case 2:
		subject = events.SubjectPre + strings.Repeat("a.", 1+h.rng.IntN(200)) + "z"
	}
	good := h.goodBody(r)
	switch h.rng.IntN(10) {
	case 0: // random bytes
		return subject, h.bytesN(h.size())
	case 1: // random JSON
		b, _ := json.Marshal(h.value(3))
		return subject, b
	case 2: // an envelope with random members
		env := map[string]any{}
		for _, k := range []string{"id", "type", "occurredAt", "projectId", "renderId", "data"} {
			if h.rng.IntN(4) > 0 {
				env[k] = h.value(2)
			}
		}
		b, _ := json.Marshal(env)
		return subject, b
	case 3: // a truncated good event
		return subject, good[:h.rng.IntN(len(good))]
	case 4: // invalid UTF-8 inside a string of a good event
		at := strings.Index(string(good), `"id":"`) + len(`"id":"`)
		bad := []string{"\xff", "\xc3\x28", "\xed\xa0\x80", "\xc0\xaf", "\xf8\x88\x80\x80\x80"}[h.rng.IntN(5)]
		return subject, []byte(string(good[:at]) + bad + string(good[at:]))
	case 5: // a lone surrogate escape
		at := strings.Index(string(good), `"id":"`) + len(`"id":"`)
		return subject, []byte(string(good[:at]) + `\ud800` + string(good[at:]))
	case 6: // a good event with a huge string
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		m["data"].(map[string]any)["shareId"] = strings.Repeat("s", h.size())
		b, _ := json.Marshal(m)
		return subject, b
	case 7: // as large as the server takes, or just over
		n := h.maxPayload - 512 - h.rng.IntN(4096)
		if h.rng.IntN(8) == 0 {
			n = h.maxPayload + 1
		}
		return subject, h.bytesN(n)
	case 8: // empty
		return subject, nil
	}
	// a good event under a subject that is not its own
	return subject, good
}

// goodBody is a well-formed share.created of render r.
func (h *hostileGen) goodBody(r string) []byte {
	return h.g.envelope(events.TypeShareCreated, h.g.home[r], r, h.g.shareData(h.g.pick(h.g.shares))).data
}

// size is a random body size, mostly small, up to the max payload.
func (h *hostileGen) size() int {
	switch h.rng.IntN(10) {
	case 0:
		return events.MaxSize + h.rng.IntN(h.maxPayload-events.MaxSize-1024)
	case 1, 2:
		return 1024 + h.rng.IntN(events.MaxSize)
	}
	return h.rng.IntN(1024)
}

func (h *hostileGen) bytesN(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(h.rng.UintN(256))
	}
	return b
}

// token is a subject token: printable, or any bytes NATS allows in one.
func (h *hostileGen) token() string {
	if h.rng.IntN(2) == 0 {
		return h.g.pick([]string{"share", "viewed", "render", "created", "✓", "ünï", "x\xff\xfe"})
	}
	b := make([]byte, 1+h.rng.IntN(12))
	for i := range b {
		for b[i] = byte(h.rng.UintN(256)); b[i] <= ' ' || b[i] == '.' || b[i] == '*' || b[i] == '>' || b[i] == 0x7f; {
			b[i] = byte(h.rng.UintN(256))
		}
	}
	return string(b)
}

// value is a random JSON value, nested at most depth deep.
func (h *hostileGen) value(depth int) any {
	k := h.rng.IntN(8)
	if depth == 0 {
		k %= 5
	}
	switch k {
	case 0:
		return nil
	case 1:
		return h.rng.IntN(2) == 0
	case 2:
		return h.rng.NormFloat64() * 1e6
	case 3:
		return h.g.pick([]string{"", "share.viewed", "render.created", h.g.uuid(), "2026-06-05T10:00:00Z", "✓ 日本", "\u2028"})
	case 4:
		return strings.Repeat("v", h.rng.IntN(100))
	case 5, 6:
		m := map[string]any{}
		for range h.rng.IntN(5) {
			m[h.g.pick([]string{"id", "type", "data", "shareId", "viewedAt", "keyHash", "x", ""})] = h.value(depth - 1)
		}
		return m
	}
	var s []any
	for range h.rng.IntN(5) {
		s = append(s, h.value(depth-1))
	}
	return s
}

// natsHeaders are the headers nats-server v2.15 reads on a message
// (server/stream.go, jetstream_api.go, consumer.go, msgtrace.go,
// accounts.go, auth_callout.go, websocket.go), with values that are valid,
// invalid, or right for this stream.
var natsHeaders = []string{
	"Nats-Msg-Id", "Nats-Expected-Stream", "Nats-Expected-Last-Sequence",
	"Nats-Expected-Last-Subject-Sequence", "Nats-Expected-Last-Subject-Sequence-Subject",
	"Nats-Expected-Last-Msg-Id", "Nats-Stream-Source", "Nats-Last-Consumer", "Nats-Last-Stream",
	"Nats-Consumer-Stalled", "Nats-Rollup", "Nats-Msg-Size", "Nats-Response-Type", "Nats-TTL",
	"Nats-Marker-Reason", "Nats-Incr", "Nats-Counter-Sources", "Nats-Batch-Id", "Nats-Batch-Sequence",
	"Nats-Batch-Commit", "Nats-Schedule", "Nats-Schedule-Time-Zone", "Nats-Schedule-TTL",
	"Nats-Schedule-Rollup", "Nats-Schedule-Target", "Nats-Schedule-Source", "Nats-Scheduler",
	"Nats-Schedule-Next", "Nats-Stream", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Subject",
	"Nats-Last-Sequence", "Nats-Num-Pending", "Nats-UpTo-Sequence", "Nats-Required-Api-Level",
	"Nats-Stream-Identity", "Nats-Pending-Messages", "Nats-Pending-Bytes", "Nats-Pin-Id",
	"Nats-Trace-Dest", "Nats-Trace-Hop", "Nats-Trace-Origin-Account", "Nats-Trace-Only",
	"Nats-Request-Info", "Nats-Server-Xkey", "Nats-No-Masking",
}

// headers returns 1 to 6 random headers.
func (h *hostileGen) headers() nats.Header {
	hdr := nats.Header{}
	for range 1 + h.rng.IntN(6) {
		switch x := h.rng.IntN(10); {
		case x < 7:
			k := h.g.pick(natsHeaders)
			hdr.Add(k, h.headerValue(k))
		case x < 8: // our own dead-letter headers, spoofed
			k := h.g.pick([]string{projector.HeaderSeq, projector.HeaderReason, projector.HeaderSubject, projector.HeaderMsgID, "Sharesd-Original-Header-Nats-Msg-Id"})
			hdr.Add(k, h.g.pick([]string{"1", "0", "-1", "x", strconv.FormatUint(h.lastSeq, 10)}))
		case x < 9: // a random name and value
			hdr.Add(h.token(), string(h.bytesN(h.rng.IntN(64))))
		default: // a big value, or many values
			if h.rng.IntN(2) == 0 {
				hdr.Add("X-Big", strings.Repeat("h", h.rng.IntN(h.maxPayload/4)))
			} else {
				for i := range 1 + h.rng.IntN(200) {
					hdr.Add("X-Many-"+strconv.Itoa(i%7), strconv.Itoa(i))
				}
			}
		}
	}
	return hdr
}

func (h *hostileGen) headerValue(k string) string {
	seq := strconv.FormatUint(h.lastSeq, 10)
	subject := events.SubjectPre + "x"
	if len(h.subjects) > 0 {
		subject = h.g.pick(h.subjects)
	}
	common := []string{"", "0", "1", "-1", "true", "x", "CRAFTKIT", "CRAFTKIT_DEADLETTER", seq, "18446744073709551616", "\xff\xfe"}
	if h.rng.IntN(3) == 0 {
		return h.g.pick(common)
	}
	switch k {
	case "Nats-Msg-Id", "Nats-Expected-Last-Msg-Id", "Nats-Batch-Id":
		return h.g.pick([]string{h.lastID, "hostile-" + strconv.Itoa(h.rng.IntN(50)), h.g.uuid()})
	case "Nats-Expected-Stream":
		return h.g.pick([]string{events.Stream, events.DeadLetterStream, "OTHER"})
	case "Nats-Expected-Last-Sequence", "Nats-Expected-Last-Subject-Sequence", "Nats-Batch-Sequence", "Nats-Last-Sequence", "Nats-Sequence":
		return h.g.pick([]string{seq, strconv.FormatUint(h.lastSeq+1, 10), "0", "1"})
	case "Nats-Expected-Last-Subject-Sequence-Subject", "Nats-Subject", "Nats-Schedule-Target", "Nats-Schedule-Source":
		return h.g.pick([]string{subject, events.SubjectPre + ">", events.DeadLetterPre + subject})
	case "Nats-Trace-Dest":
		// Not a subject of either stream: the server publishes its trace
		// there, and a publisher who may publish into the dead-letter
		// stream needs no trace to do so.
		return h.g.pick([]string{"trace.x", "_INBOX.trace"})
	case "Nats-Rollup", "Nats-Schedule-Rollup":
		return h.g.pick([]string{"sub", "all", "none"})
	case "Nats-TTL", "Nats-Schedule-TTL":
		return h.g.pick([]string{"1s", "never", "10", "-1"})
	case "Nats-Marker-Reason":
		return h.g.pick([]string{"MaxAge", "Purge", "Remove"})
	case "Nats-Incr":
		return h.g.pick([]string{"+1", "-1", "1e9"})
	case "Nats-Batch-Commit":
		return h.g.pick([]string{"1", "eob"})
	case "Nats-Schedule":
		return h.g.pick([]string{"@at 2026-01-01T00:00:00Z", "@every 1s", "* * * * * *"})
	case "Nats-Trace-Only":
		return "true"
	}
	return h.g.pick(common)
}

// deadLetterOrigins counts the dead letters of each origin sequence
// (their Sharesd-Original-Sequence header), reading only the headers.
func deadLetterOrigins(t testing.TB, js jetstream.JetStream) map[uint64]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	n := s.CachedInfo().State.Msgs
	got := make(map[uint64]int)
	if n == 0 {
		return got
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		t.Fatalf("dead-letter consumer: %v", err)
	}
	for read := uint64(0); read < n; {
		batch, err := cons.Fetch(int(min(n-read, 1000)), jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("fetch dead letters: %v", err)
		}
		for m := range batch.Messages() {
			seq, err := strconv.ParseUint(m.Headers().Get(projector.HeaderSeq), 10, 64)
			if err != nil {
				t.Fatalf("dead letter without an origin sequence: %v", err)
			}
			got[seq]++
			read++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch dead letters: %v", err)
		}
	}
	return got
}
