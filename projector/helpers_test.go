package projector_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// defaultBase is the share base the tests render lists with.
const defaultBase = "https://www.craftkit.dev"

// env is one test's servers: an embedded JetStream, a redis-server and a
// read-model store on it.
type env struct {
	ns    *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	redis *redistest.Server
	rdb   *redis.Client
	store *readmodel.Store
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ns, nc, js := natstest.Start(t)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	return &env{ns: ns, nc: nc, js: js, redis: srv, rdb: rdb, store: readmodel.New(rdb, 24*time.Hour)}
}

// running is a projector running in its own goroutine.
type running struct {
	p      *projector.Projector
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// start runs a projector on e until the test ends (or stop is called).
func (e *env) start(t testing.TB) *running {
	t.Helper()
	return e.startWith(t, projector.Config{})
}

func (e *env) startWith(t testing.TB, cfg projector.Config) *running {
	t.Helper()
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = time.Second
	}
	if cfg.DropGrace == 0 {
		cfg.DropGrace = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 500 * time.Millisecond
	}
	reg := prometheus.NewRegistry()
	p := projector.New(e.js, e.store, testLogger(t), projector.NewMetrics(reg), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the projector and waits for Run to return, at most 10s (the
// SIGTERM budget). It returns how long that took. Calling it again is a
// no-op.
func (r *running) stop(t testing.TB) time.Duration {
	t.Helper()
	if r.done == nil {
		return 0
	}
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
	r.done = nil
	return time.Since(start)
}

// waitFor calls f every 10ms until it returns nil, and fails the test with
// f's last error when timeout passes first.
func waitFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// waitApplied waits until the active generation holds every event up to
// stream sequence seq: its saved position, or the position a projector
// reports having written to it, has reached seq.
func (e *env) waitApplied(t testing.TB, seq uint64, ps ...*running) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		ctl, err := e.store.ReadControl(context.Background())
		if err != nil {
			return err
		}
		if ctl.Active == "" {
			return errors.New("no active generation")
		}
		if ctl.Pos[ctl.Active] >= seq {
			return nil
		}
		for _, r := range ps {
			if st := r.p.Status(); st.Gen == ctl.Active && !st.Rebuilding && st.Applied >= seq {
				return nil
			}
		}
		return fmt.Errorf("active generation %s saved at %d, want %d", ctl.Active, ctl.Pos[ctl.Active], seq)
	})
}

// lastSeq is the CRAFTKIT stream's last sequence.
func (e *env) lastSeq(t testing.TB) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), events.Stream)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return s.CachedInfo().State.LastSeq
}

// An event is one contract event to publish. Its subject follows from its
// type and entity, as a real publisher's does.
type event struct {
	id      string
	typ     events.Type
	project string
	render  string // render and share events
	key     string // apikey events
	data    map[string]any
}

func (ev event) subject() string {
	switch {
	case ev.typ.RenderScoped():
		return events.Subject(ev.typ, ev.render)
	case ev.typ == events.TypeAPIKeyCreated || ev.typ == events.TypeAPIKeyRevoked:
		return events.Subject(ev.typ, ev.key)
	}
	return events.Subject(ev.typ, ev.project)
}

// body is the event's JSON, occurring at a fixed time.
func (ev event) body() []byte {
	data := ev.data
	if data == nil {
		data = map[string]any{}
	}
	m := map[string]any{"id": ev.id, "type": string(ev.typ), "occurredAt": "2026-06-05T10:00:00Z", "projectId": ev.project, "data": data}
	if ev.typ.RenderScoped() {
		m["renderId"] = ev.render
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // a test bug: every value above marshals
	}
	return b
}

// publish publishes ev with Nats-Msg-Id set to its id and returns its stream
// sequence.
func (e *env) publish(t testing.TB, evs ...event) uint64 {
	t.Helper()
	var seq uint64
	for _, ev := range evs {
		seq = natstest.Publish(t, e.js, ev.subject(), ev.body(), ev.id)
	}
	return seq
}

// publishAsync publishes evs without waiting for each ack, then waits for
// all of them and returns their stream sequences. It keeps at most 1,000
// unacknowledged, well below the client's limit, past which a publish
// fails instead of waiting.
func (e *env) publishAsync(t testing.TB, evs []event) []uint64 {
	t.Helper()
	const window = 1000
	seqs := make([]uint64, 0, len(evs))
	timeout := time.After(60 * time.Second)
	for start := 0; start < len(evs); start += window {
		chunk := evs[start:min(start+window, len(evs))]
		futs := make([]jetstream.PubAckFuture, len(chunk))
		for i, ev := range chunk {
			msg := nats.NewMsg(ev.subject())
			msg.Data = ev.body()
			msg.Header.Set(jetstream.MsgIDHeader, ev.id)
			f, err := e.js.PublishMsgAsync(msg)
			if err != nil {
				t.Fatalf("publish async: %v", err)
			}
			futs[i] = f
		}
		for i, f := range futs {
			select {
			case ack := <-f.Ok():
				seqs = append(seqs, ack.Sequence)
			case err := <-f.Err():
				t.Fatalf("publish async %s: %v", chunk[i].subject(), err)
			case <-timeout:
				t.Fatal("async publishes not acknowledged after 60s")
			}
		}
	}
	return seqs
}

// newUUID returns a random version 4 UUID in lowercase.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newID() string { return "ev-" + newUUID() }

// Event constructors, with the data of a well-formed event of each type.

func renderCreated(project, render string) event {
	return event{id: newID(), typ: events.TypeRenderCreated, project: project, render: render}
}

func renderDeleted(project, render string) event {
	return event{id: newID(), typ: events.TypeRenderDeleted, project: project, render: render}
}

// shareCreated is a link share created at createdAt with token "cks_"+share.
func shareCreated(project, render, share, createdAt string) event {
	return event{id: newID(), typ: events.TypeShareCreated, project: project, render: render, data: map[string]any{
		"shareId": share, "channel": "link", "recipientEmail": nil, "message": nil,
		"expiresAt": nil, "createdAt": createdAt, "shareToken": "cks_" + share,
	}}
}

func shareRevoked(project, render, share, revokedAt string, reason any) event {
	return event{id: newID(), typ: events.TypeShareRevoked, project: project, render: render, data: map[string]any{
		"shareId": share, "revokedAt": revokedAt, "reason": reason,
	}}
}

func shareViewed(project, render, share string) event {
	return event{id: newID(), typ: events.TypeShareViewed, project: project, render: render, data: map[string]any{
		"shareId": share, "viewedAt": "2026-06-05T12:00:00Z",
	}}
}

func apikeyCreated(project, keyID, hash, environment string) event {
	return event{id: newID(), typ: events.TypeAPIKeyCreated, project: project, key: keyID, data: map[string]any{
		"keyId": keyID, "keyHash": hash, "environment": environment,
	}}
}

func apikeyRevoked(project, keyID string) event {
	return event{id: newID(), typ: events.TypeAPIKeyRevoked, project: project, key: keyID, data: map[string]any{"keyId": keyID}}
}

func projectUpdated(project string, base any) event {
	return event{id: newID(), typ: events.TypeProjectUpdated, project: project, data: map[string]any{"shareBase": base}}
}

// keyHash is the lowercase hex SHA-256 of a plaintext key.
func keyHash(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// share is one row of a list as the API renders it.
type share struct {
	ID             string  `json:"id"`
	Channel        string  `json:"channel"`
	RecipientEmail *string `json:"recipientEmail"`
	Message        *string `json:"message"`
	RevokedAt      *string `json:"revokedAt"`
	RevokedReason  *string `json:"revokedReason"`
	ExpiresAt      *string `json:"expiresAt"`
	CreatedAt      string  `json:"createdAt"`
	ShareToken     string  `json:"shareToken"`
	ClickCount     int     `json:"clickCount"`
	ShareURL       string  `json:"shareUrl"`
}

// list reads a render's shares as the API would render them.
func (e *env) list(t testing.TB, project, render string) ([]share, error) {
	t.Helper()
	l, err := e.store.List(context.Background(), project, render, nil)
	if err != nil {
		return nil, err
	}
	return decodeList(t, l), nil
}

func decodeList(t testing.TB, l *readmodel.List) []share {
	t.Helper()
	b, err := l.AppendJSON(nil, defaultBase)
	if err != nil {
		t.Fatalf("render list: %v", err)
	}
	var out []share
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decode list %s: %v", b, err)
	}
	return out
}

// mustList is list for a render that must be there.
func (e *env) mustList(t testing.TB, project, render string) []share {
	t.Helper()
	l, err := e.list(t, project, render)
	if err != nil {
		t.Fatalf("list %s: %v", render, err)
	}
	return l
}

// clicks maps each share of a list to its clickCount.
func clicks(l []share) map[string]int {
	m := make(map[string]int, len(l))
	for _, s := range l {
		m[s.ID] = s.ClickCount
	}
	return m
}

// wantClicks checks that a render lists exactly the shares of want with
// their counts.
func (e *env) wantClicks(t testing.TB, project, render string, want map[string]int) {
	t.Helper()
	got := clicks(e.mustList(t, project, render))
	if err := sameClicks(got, want); err != nil {
		t.Fatalf("render %s: %v", render, err)
	}
}

func sameClicks(got, want map[string]int) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d shares %v, want %d %v", len(got), got, len(want), want)
	}
	for id, n := range want {
		if g, ok := got[id]; !ok || g != n {
			return fmt.Errorf("share %s: clickCount %d (listed %v), want %d", id, g, ok, n)
		}
	}
	return nil
}

// renderKeys lists the Redis keys of a render in every generation, with
// SCAN over sharesd:*:{<render>}:*.
func (e *env) renderKeys(t testing.TB, render string) []string {
	t.Helper()
	return e.scan(t, "sharesd:*:{"+render+"}:*")
}

// genKeys lists the Redis keys of generation gen.
func (e *env) genKeys(t testing.TB, gen string) []string {
	t.Helper()
	return e.scan(t, "sharesd:"+gen+":*")
}

func (e *env) scan(t testing.TB, match string) []string {
	t.Helper()
	var keys []string
	it := e.rdb.Scan(context.Background(), 0, match, 1000).Iterator()
	for it.Next(context.Background()) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatalf("scan %s: %v", match, err)
	}
	return keys
}

// metric returns the value of the counter or gauge name with labels in reg
// (0 when it has no such series).
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if have[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}

// deadLetters reads every message of the dead-letter stream.
func (e *env) deadLetters(t testing.TB) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	st := s.CachedInfo().State
	var out []*jetstream.RawStreamMsg
	for seq := st.FirstSeq; seq <= st.LastSeq && st.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// deadLetterOf finds the dead letter of the event at stream sequence seq.
func (e *env) deadLetterOf(t testing.TB, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	for _, m := range e.deadLetters(t) {
		if m.Header.Get(projector.HeaderSeq) == itoa(seq) {
			return m
		}
	}
	return nil
}

// A model is the expected read model of one project's renders, folded
// from the render and share events a test publishes: a plain restatement
// of the contract for the bigger streams, where writing the expectation
// out would be noise. It ignores revocations and deletions.
type model struct {
	project string
	listed  map[string]bool           // render -> registered
	shares  map[string]map[string]int // render -> share -> views, listed shares only
	early   map[string]map[string]int // render -> share -> views before its share.created
}

// modelOf folds evs, all of one project.
func modelOf(project string, evs []event) *model {
	m := &model{project: project, listed: map[string]bool{}, shares: map[string]map[string]int{}, early: map[string]map[string]int{}}
	for _, ev := range evs {
		m.add(ev)
	}
	return m
}

func (m *model) add(ev event) {
	if ev.project != m.project || !ev.typ.RenderScoped() {
		return
	}
	r := ev.render
	if m.shares[r] == nil {
		m.shares[r], m.early[r] = map[string]int{}, map[string]int{}
	}
	switch ev.typ {
	case events.TypeRenderCreated:
		m.listed[r] = true
	case events.TypeShareCreated:
		m.listed[r] = true
		id := ev.data["shareId"].(string)
		if _, ok := m.shares[r][id]; !ok {
			m.shares[r][id] = m.early[r][id]
		}
	case events.TypeShareViewed:
		id := ev.data["shareId"].(string)
		if _, ok := m.shares[r][id]; ok {
			m.shares[r][id]++
		} else {
			m.early[r][id]++
		}
	}
}

// renders lists the model's renders.
func (m *model) renders() []string {
	var out []string
	for r := range m.shares {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// check compares every render of the model with the read model.
func (m *model) check(t testing.TB, e *env) {
	t.Helper()
	if err := m.compareAll(t, e); err != nil {
		t.Fatal(err)
	}
}

// compareAll compares every render of the model with the read model.
func (m *model) compareAll(t testing.TB, e *env) error {
	t.Helper()
	for _, r := range m.renders() {
		if err := m.compare(t, e, r); err != nil {
			return err
		}
	}
	return nil
}

// compare compares one render with the read model.
func (m *model) compare(t testing.TB, e *env, render string) error {
	t.Helper()
	l, err := e.list(t, m.project, render)
	switch {
	case !m.listed[render] && errors.Is(err, readmodel.ErrNotFound):
		return nil
	case !m.listed[render]:
		return fmt.Errorf("render %s: list = %v, %v, want ErrNotFound", render, l, err)
	case err != nil:
		return fmt.Errorf("list %s: %w", render, err)
	}
	if err := sameClicks(clicks(l), m.shares[render]); err != nil {
		return fmt.Errorf("render %s: %w", render, err)
	}
	return nil
}

// workload returns the events of renders renders of one project, each with
// shares shares and views views per share, interleaved across renders.
func workload(project string, renders, shares, views int) []event {
	var evs []event
	ids := make([]string, renders)
	for i := range ids {
		ids[i] = newUUID()
		evs = append(evs, renderCreated(project, ids[i]))
	}
	for s := range shares {
		for _, r := range ids {
			id := fmt.Sprintf("share-%03d", s)
			evs = append(evs, shareCreated(project, r, id, fmt.Sprintf("2026-06-05T10:%02d:%02dZ", s/60%60, s%60)))
		}
	}
	for v := range views {
		for s := range shares {
			for _, r := range ids {
				evs = append(evs, shareViewed(project, r, fmt.Sprintf("share-%03d", (s+v)%shares)))
			}
		}
	}
	return evs
}

// moreViews returns n views spread over the shares of m's renders.
func moreViews(m *model, n int) []event {
	var all [][2]string
	for _, r := range m.renders() {
		for id := range m.shares[r] {
			all = append(all, [2]string{r, id})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i][0]+all[i][1] < all[j][0]+all[j][1] })
	evs := make([]event, n)
	for i := range evs {
		rs := all[i%len(all)]
		evs[i] = shareViewed(m.project, rs[0], rs[1])
	}
	return evs
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // a test bug: the tests marshal maps of plain values
	}
	return b
}

// series returns every series of the counter or gauge name in reg, keyed
// by the value of label.
func series(t testing.TB, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					key = l.GetValue()
				}
			}
			out[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// testLogger discards the projector's logs, or writes them to the test's
// output when SHARESD_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SHARESD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
