package projector_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	refmodel "github.com/craftkit/sharesd/projector/model"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// The property test's size: raise it to search harder, e.g.
// go test ./projector -run TestProperty -args -prop.seeds=200 -prop.events=1000
// and replay one failure with -prop.seed=<seed>.
var (
	propSeeds  = flag.Int("prop.seeds", 30, "property test: number of random streams")
	propEvents = flag.Int("prop.events", 300, "property test: events per stream")
	propSeed   = flag.Uint64("prop.seed", 0, "property test: run only this seed")
)

const propBase = "https://www.craftkit.dev"

// TestProperty feeds random streams through the real projector, NATS and
// Redis, restarting the projector (and rewinding its saved position, as a
// crash between a write and its checkpoint would) at random points, and
// checks that the API answers exactly what the reference model folds from
// the same stream, and that every rejected event was dead-lettered.
func TestProperty(t *testing.T) {
	t.Parallel()
	n := *propSeeds
	if testing.Short() {
		n = min(n, 5)
	}
	seeds := make([]uint64, 0, n)
	if *propSeed != 0 {
		seeds = append(seeds, *propSeed)
	} else {
		for i := range n {
			seeds = append(seeds, uint64(i+1))
		}
	}
	for _, seed := range seeds {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			propRun(t, seed, *propEvents)
		})
	}
}

// propWorld is one seed's servers and the projector that runs on them.
type propWorld struct {
	t       *testing.T
	js      jetstream.JetStream
	store   *readmodel.Store
	horizon time.Duration
	rng     *rand.Rand
	// Some seeds run several projectors sharing partitions.
	procs  int
	cancel []context.CancelFunc
	done   []chan error
	projs  []*projector.Projector
}

// propRun runs one seed of n events on an embedded NATS server and a
// redis-server of its own.
func propRun(t *testing.T, seed uint64, n int) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("replay with: go test ./projector -run 'TestProperty/seed=%d$' -args -prop.seed=%d -prop.events=%d", seed, seed, n)
		}
	}()
	_, _, js := natstest.Start(t, projector.EnsureStreams)
	propRunOn(t, seed, n, js, redistest.Start(t).Client(t))
}

// propRunOn runs one seed of n events on js, whose streams exist and are
// empty, and rdb, which holds nothing: a single node or a cluster.
func propRunOn(t *testing.T, seed uint64, n int, js jetstream.JetStream, rdb redis.UniversalClient) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5ea1))
	// Most streams remember ids for the default day; some for a few
	// milliseconds, so republished ids land on both sides of the horizon.
	horizon := readmodel.DefaultHorizon
	if rng.IntN(3) == 0 {
		horizon = time.Duration(5+rng.IntN(100)) * time.Millisecond
	}
	w := &propWorld{t: t, js: js, store: readmodel.New(rdb, horizon), horizon: horizon, rng: rng, procs: 1}
	if rng.IntN(3) == 0 { // several projectors sharing 2 to 6 partitions
		w.procs = 2 + rng.IntN(2)
		w.store.SetPartitions(2 + rng.IntN(5))
	}
	g := newPropGen(rng, seed)
	evs := g.stream(n)

	w.start()
	t.Cleanup(w.stop)
	// Publish in chunks; between chunks, let the projector catch up,
	// restart it, or rewind its saved position and restart it.
	for len(evs) > 0 {
		k := min(len(evs), 1+rng.IntN(n/3+1))
		w.publish(evs[:k])
		evs = evs[k:]
		if horizon < time.Second && rng.IntN(2) == 0 {
			// Let the horizon pass, so what comes next sees these ids
			// forgotten (and a rewind replays them past it).
			published := time.Now()
			polltest.WaitFor(t, time.Second, func() error {
				if d := time.Since(published); d <= horizon {
					return fmt.Errorf("only %v of the %v horizon passed", d, horizon)
				}
				return nil
			})
		}
		switch rng.IntN(4) {
		case 0:
			w.restart(false)
		case 1:
			w.restart(true)
		case 2:
			w.waitCaughtUp()
		}
	}
	w.waitCaughtUp()

	ctx := context.Background()
	msgs, head, err := projector.ReadStream(ctx, js, nil)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	if uint64(len(msgs)) != head {
		t.Fatalf("read %d messages, stream head %d", len(msgs), head)
	}
	m, rejected := propFold(msgs, horizon)
	w.checkAPI(m, g)
	w.checkDeadLetters(rejected)

	rep, err := projector.Verify(ctx, js, w.store, projector.VerifyOptions{DefaultBase: propBase, Horizon: horizon, Wait: time.Second})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, d := range rep.Diffs {
		t.Errorf("verify: %s: %s\n  stream: %s\n  redis:  %s", d.RenderID, d.Reason, d.Want, d.Got)
	}
	if rep.Checked != len(m.Renders) || rep.Moved != 0 || rep.Head != head {
		t.Errorf("verify report %+v, want %d renders checked, none moved, head %d", rep, len(m.Renders), head)
	}
}

// propFold folds msgs and returns the sequences the model rejected
// (undecodable, of another project, a taken key hash): each must be
// dead-lettered.
func propFold(msgs []refmodel.Msg, horizon time.Duration) (*refmodel.Model, map[uint64]bool) {
	m := refmodel.Fold(msgs, horizon)
	rejected := map[uint64]bool{}
	for seq := range m.Dead {
		rejected[seq] = true
	}
	return m, rejected
}

// start starts the world's projectors.
func (w *propWorld) start() {
	for range w.procs {
		reg := prometheus.NewRegistry()
		p := projector.New(w.js, w.store, slog.New(slog.DiscardHandler), projector.NewMetrics(reg), projector.Config{
			BatchSize: 1 + w.rng.IntN(64), LeaseTTL: time.Second, DropGrace: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		w.projs, w.cancel, w.done = append(w.projs, p), append(w.cancel, cancel), append(w.done, done)
	}
}

// stop stops the world's projectors, in a random order.
func (w *propWorld) stop() {
	for _, i := range w.rng.Perm(len(w.cancel)) {
		w.cancel[i]()
		select {
		case err := <-w.done[i]:
			if err != nil {
				w.t.Errorf("projector Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			w.t.Fatal("projector did not stop within 10s")
		}
	}
	w.projs, w.cancel, w.done = nil, nil, nil
}

// restart stops the projector and starts a new one. With rewind it first
// lowers the saved position of the active generation, as if the process
// had died after writing batches but before saving their position: the
// new projector gets those events again and must skip them.
func (w *propWorld) restart(rewind bool) {
	w.stop()
	if rewind {
		ctx := context.Background()
		ctl, err := w.store.ReadControl(ctx)
		if err != nil {
			w.t.Fatalf("read control: %v", err)
		}
		if pos := ctl.Pos[ctl.Active]; ctl.Active != "" && pos > 0 {
			to := w.rng.Uint64N(pos)
			if w.rng.IntN(2) == 0 {
				to = 0 // the whole stream again
			}
			if err := w.store.Rewind(ctx, ctl.Active, to); err != nil {
				w.t.Fatalf("reset position: %v", err)
			}
		}
	}
	w.start()
}

// waitCaughtUp waits until the running projector has applied the whole
// stream to the active generation.
func (w *propWorld) waitCaughtUp() {
	w.t.Helper()
	ctx := context.Background()
	polltest.WaitFor(w.t, 30*time.Second, func() error {
		s, err := w.js.Stream(ctx, events.Stream)
		if err != nil {
			return err
		}
		head := s.CachedInfo().State.LastSeq
		ctl, err := w.store.ReadControl(ctx)
		if err != nil {
			return err
		}
		if ctl.Active != "" && ctl.Pos[ctl.Active] >= head {
			return nil // saved by every partition, so applied
		}
		if len(w.projs) > 1 {
			return fmt.Errorf("partitions saved at %d at least, of %d", ctl.Pos[ctl.Active], head)
		}
		st := w.projs[0].Status()
		if ctl.Active == "" || st.Gen != ctl.Active || st.Rebuilding || st.Applied < head {
			return fmt.Errorf("projector at %d of %d (gen %q, active %q, rebuilding %t, last error %q)",
				st.Applied, head, st.Gen, ctl.Active, st.Rebuilding, st.LastError)
		}
		return nil
	})
}

func (w *propWorld) publish(evs []propEvent) {
	w.t.Helper()
	for _, ev := range evs {
		msg := nats.NewMsg(ev.subject)
		msg.Data = ev.data
		if ev.msgID != "" {
			msg.Header.Set(jetstream.MsgIDHeader, ev.msgID)
		}
		if _, err := w.js.PublishMsgAsync(msg); err != nil {
			w.t.Fatalf("publish: %v", err)
		}
	}
	select {
	case <-w.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		w.t.Fatal("publishes not acknowledged within 30s")
	}
}

// checkAPI asks the real API, with each project's key, for every render
// (and one that never existed) and compares each answer with the model's.
func (w *propWorld) checkAPI(m *refmodel.Model, g *propGen) {
	w.t.Helper()
	srv := httptest.NewServer(api.NewServer(slog.New(slog.DiscardHandler), w.store, nil, nil, api.Config{ShareBase: propBase}))
	defer srv.Close()
	renders := append([]string{"00000000-0000-4000-8000-000000000000"}, g.renders...)
	for _, project := range g.projects {
		for _, render := range renders {
			want, found := m.List(project, render, propBase)
			status, got := propGet(w.t, srv.URL, render, g.queryKey(project))
			switch {
			case !found && status != http.StatusNotFound:
				w.t.Errorf("project %s render %s: status %d, want 404", project, render, status)
			case found && status != http.StatusOK:
				w.t.Errorf("project %s render %s: status %d, want 200", project, render, status)
			case found && !reflect.DeepEqual(got, want):
				w.t.Errorf("project %s render %s:\n got  %s\n want %s", project, render, propJSON(got), propJSON(want))
			}
		}
	}
}

// propGet lists a render's shares through the API.
func propGet(t testing.TB, base, render, key string) (int, []refmodel.Share) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/renders/"+render+"/shares", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", render, err)
	}
	defer resp.Body.Close()
	var body struct {
		Shares []refmodel.Share `json:"shares"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s: decode: %v", render, err)
		}
	}
	return resp.StatusCode, body.Shares
}

func propJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkDeadLetters checks that the dead-letter stream holds exactly one
// copy of each rejected event, and nothing else.
func (w *propWorld) checkDeadLetters(rejected map[uint64]bool) {
	w.t.Helper()
	ctx := context.Background()
	s, err := w.js.Stream(ctx, events.DeadLetterStream)
	if err != nil {
		w.t.Fatalf("dead-letter stream: %v", err)
	}
	got := map[uint64]int{}
	st := s.CachedInfo().State
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			w.t.Fatalf("dead letter %d: %v", seq, err)
		}
		orig, _ := strconv.ParseUint(m.Header.Get(projector.HeaderSeq), 10, 64)
		got[orig]++
	}
	for seq := range rejected {
		if got[seq] != 1 {
			w.t.Errorf("rejected event at seq %d dead-lettered %d times, want once", seq, got[seq])
		}
	}
	for seq, n := range got {
		if !rejected[seq] {
			w.t.Errorf("event at seq %d dead-lettered %d times, but the model applies it", seq, n)
		}
	}
}

// A propEvent is one message to publish: a contract event, a bad one, or
// a copy of an earlier one.
type propEvent struct {
	subject string
	data    []byte
	msgID   string // "" for none
}

// propGen generates random streams over a few projects, renders, shares and
// keys. Each render has a home project, but events of another project for
// it are generated too.
type propGen struct {
	rng      *rand.Rand
	seed     uint64
	projects []string
	renders  []string
	home     map[string]string
	shares   []string
	keys     []string
	out      []propEvent
	n        int // events generated, for unique ids
}

func newPropGen(rng *rand.Rand, seed uint64) *propGen {
	g := &propGen{rng: rng, seed: seed, home: map[string]string{}}
	for range 3 {
		g.projects = append(g.projects, g.uuid())
	}
	for range 3 + rng.IntN(6) {
		r := g.uuid()
		g.renders = append(g.renders, r)
		g.home[r] = g.projects[rng.IntN(len(g.projects))]
	}
	for i := range 6 {
		g.shares = append(g.shares, fmt.Sprintf("share-%d", i))
	}
	for i := range 4 {
		g.keys = append(g.keys, fmt.Sprintf("key_%d_%d", seed, i))
	}
	return g
}

func (g *propGen) uuid() string { return eventstest.SeededUUID(g.rng) }

// queryKey is the plaintext live key of project, created first in every
// stream and never revoked by its own project.
func (g *propGen) queryKey(project string) string {
	return fmt.Sprintf("ck_live_prop_%d_%s", g.seed, project)
}

// stream generates about n messages.
func (g *propGen) stream(n int) []propEvent {
	for i, p := range g.projects {
		g.emit(g.envelope(events.TypeAPIKeyCreated, p, "", map[string]any{
			"keyId": fmt.Sprintf("qkey_%d_%d", g.seed, i), "keyHash": events.KeyHash(g.queryKey(p)), "environment": "live",
		}))
	}
	for len(g.out) < n {
		g.next()
	}
	return g.out
}

func (g *propGen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

// next appends one random message (or, for duplicates, a copy).
func (g *propGen) next() {
	r := g.pick(g.renders)
	p := g.home[r]
	if g.rng.IntN(20) == 0 { // another project's event for the render
		p = g.pick(g.projects)
	}
	share := g.pick(g.shares)
	switch x := g.rng.IntN(100); {
	case x < 40:
		g.emit(g.envelope(events.TypeShareViewed, p, r, map[string]any{"shareId": share, "viewedAt": g.time()}))
	case x < 55:
		g.emit(g.envelope(events.TypeShareCreated, p, r, g.shareData(share)))
	case x < 62:
		g.emit(g.envelope(events.TypeShareRevoked, p, r, map[string]any{"shareId": share, "revokedAt": g.time(), "reason": g.maybe("revoked_by_partner", "expired ✓")}))
	case x < 66:
		g.emit(g.envelope(events.TypeRenderCreated, p, r, map[string]any{}))
	case x < 67:
		g.emit(g.envelope(events.TypeRenderDeleted, p, r, map[string]any{}))
	case x < 71:
		g.keyEvent()
	case x < 74:
		g.emit(g.envelope(events.TypeProjectUpdated, g.pick(g.projects), "", map[string]any{
			"shareBase": g.maybe("https://share.example.com", "http://links.example.org/", "https://x.example/base"),
		}))
	case x < 83:
		g.bad(r, p, share)
	default:
		g.duplicate()
	}
}

func (g *propGen) keyEvent() {
	k := g.pick(g.keys)
	p := g.projects[int(k[len(k)-1]-'0')%len(g.projects)]
	if g.rng.IntN(5) == 0 {
		p = g.pick(g.projects) // possibly another project's key
	}
	if g.rng.IntN(3) == 0 {
		g.emit(g.envelope(events.TypeAPIKeyRevoked, p, "", map[string]any{"keyId": k}))
		return
	}
	env := "live"
	if g.rng.IntN(3) == 0 {
		env = "test"
	}
	g.emit(g.envelope(events.TypeAPIKeyCreated, p, "", map[string]any{
		"keyId": k, "keyHash": events.KeyHash(fmt.Sprintf("ck_%s_%d", env, g.rng.Uint64())), "environment": env,
	}))
}

// duplicate republishes an earlier message: with its own Nats-Msg-Id
// (JetStream drops it within its window) or a new one (it is stored again
// and must count once by its event id).
func (g *propGen) duplicate() {
	if len(g.out) == 0 {
		return
	}
	ev := g.out[len(g.out)-1-g.rng.IntN(min(len(g.out), 40))]
	if g.rng.IntN(2) == 0 {
		ev.msgID = fmt.Sprintf("retry-%d-%s", g.n, ev.msgID)
		g.n++
	}
	g.out = append(g.out, ev)
}

// bad appends one malformed message of a random kind.
func (g *propGen) bad(r, p, share string) {
	good := g.envelope(events.TypeShareCreated, p, r, g.shareData(share))
	subject := events.Subject(events.TypeShareCreated, r)
	mutate := func(f func(m map[string]any)) {
		var m map[string]any
		if err := json.Unmarshal(good.data, &m); err != nil {
			panic(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		g.out = append(g.out, propEvent{subject: subject, data: b, msgID: good.msgID})
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	switch g.rng.IntN(8) {
	case 0: // not JSON
		g.out = append(g.out, propEvent{subject: subject, data: good.data[:len(good.data)/2], msgID: good.msgID})
	case 1: // unknown type
		mutate(func(m map[string]any) { m["type"] = "share.exploded" })
		g.out[len(g.out)-1].subject = events.SubjectPre + "share.exploded." + r
	case 2: // missing field
		mutate(func(m map[string]any) { delete(data(m), "shareToken") })
	case 3: // bad UUID
		mutate(func(m map[string]any) { m["projectId"] = "not-a-uuid" })
	case 4: // bad time
		mutate(func(m map[string]any) { data(m)["createdAt"] = "2026-13-45T25:00:00Z" })
	case 5: // oversized, though valid but for its size
		mutate(func(m map[string]any) { m["padding"] = strings.Repeat("x", events.MaxSize) })
	case 6: // on another render's subject
		mutate(func(m map[string]any) {})
		g.out[len(g.out)-1].subject = events.Subject(events.TypeShareCreated, g.uuid())
	case 7: // ill-typed field
		mutate(func(m map[string]any) { data(m)["channel"] = 7 })
	}
}

func (g *propGen) maybe(vals ...string) any {
	i := g.rng.IntN(len(vals) + 1)
	if i == len(vals) {
		return nil
	}
	return vals[i]
}

// time is a random time in one hour of 2026-06-05, with digits below the
// millisecond and offsets, so truncation and ties are exercised.
func (g *propGen) time() string {
	t := time.Date(2026, 6, 5, 10, 0, 0, 0, time.UTC).Add(time.Duration(g.rng.IntN(3600)) * time.Second)
	switch g.rng.IntN(4) {
	case 0:
		t = t.Add(time.Duration(g.rng.IntN(3)) * time.Millisecond) // few distinct ms: ties
	case 1:
		t = t.Add(time.Duration(g.rng.IntN(1e9)))
	}
	if g.rng.IntN(3) == 0 {
		return t.In(time.FixedZone("", (g.rng.IntN(25)-12)*3600)).Format(time.RFC3339Nano)
	}
	return t.Format(time.RFC3339Nano)
}

func (g *propGen) shareData(share string) map[string]any {
	created := g.time()
	if g.rng.IntN(3) == 0 {
		created = "2026-06-05T10:00:00.000" + strconv.Itoa(g.rng.IntN(999)) + "Z" // one ms for all: ties by id
	}
	var expires any
	if g.rng.IntN(2) == 0 {
		expires = g.time()
	}
	channel := "link"
	if g.rng.IntN(2) == 0 {
		channel = "email"
	}
	return map[string]any{
		"shareId": share, "channel": channel,
		"recipientEmail": g.maybe("ada@example.com", "Zoë <zoe@example.org>"),
		"message":        g.maybe("Here is your signed agreement.", "line\nbreak \"quoted\" \\ <b>&amp;</b> \u2028 ✓ 日本"),
		"expiresAt":      expires, "createdAt": created,
		"shareToken": fmt.Sprintf("cks_%s_%d", share, g.rng.IntN(1000)),
	}
}

// envelope makes a well-formed event of type typ. Render ids are sometimes
// spelled in uppercase, which the contract accepts.
func (g *propGen) envelope(typ events.Type, project, render string, data map[string]any) propEvent {
	g.n++
	e := eventstest.Event{ID: fmt.Sprintf("ev-%d-%d", g.seed, g.n), Type: typ, Project: project, Render: render, Data: data}
	e.Key, _ = data["keyId"].(string) // the subject of an apikey event ends with it
	at := g.time()
	if typ.RenderScoped() && g.rng.IntN(10) == 0 {
		e.Render = strings.ToUpper(render)
	}
	m := e.Envelope()
	m["occurredAt"] = at
	return propEvent{subject: e.Subject(), data: mustJSON(m), msgID: e.ID}
}

func (g *propGen) emit(ev propEvent) { g.out = append(g.out, ev) }
