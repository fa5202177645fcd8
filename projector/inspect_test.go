package projector_test

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector"
	refmodel "github.com/craftkit/sharesd/projector/model"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// share is one row of a list as the API renders it.
type share = refmodel.Share

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
	out, err := projector.ModelShares(l, defaultBase)
	if err != nil {
		t.Fatalf("read list: %v", err)
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
		m[s.ID] = int(s.ClickCount)
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

// renderKeys lists what the Redis keys of a render hold ("render",
// "shares", …; see readmodel.Store.RenderKeys), in every generation.
func (e *env) renderKeys(t testing.TB, render string) []string {
	t.Helper()
	ctx := context.Background()
	gens, err := e.store.Generations(ctx)
	if err != nil {
		t.Fatalf("generations: %v", err)
	}
	var held []string
	for gen := range gens {
		keys, err := e.store.RenderKeys(ctx, gen, render)
		if err != nil {
			t.Fatalf("keys of render %s: %v", render, err)
		}
		for what := range keys {
			held = append(held, gen+" "+what)
		}
	}
	sort.Strings(held)
	return held
}

// genKeys is how many Redis keys generation gen holds.
func (e *env) genKeys(t testing.TB, gen string) int64 {
	t.Helper()
	gens, err := e.store.Generations(context.Background())
	if err != nil {
		t.Fatalf("generations: %v", err)
	}
	return gens[gen]
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
