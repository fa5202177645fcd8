package projector_test

import (
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
)

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
func modelOf(project string, evs []eventstest.Event) *model {
	m := &model{project: project, listed: map[string]bool{}, shares: map[string]map[string]int{}, early: map[string]map[string]int{}}
	for _, ev := range evs {
		m.add(ev)
	}
	return m
}

func (m *model) add(ev eventstest.Event) {
	if ev.Project != m.project || !ev.Type.RenderScoped() {
		return
	}
	r := ev.Render
	if m.shares[r] == nil {
		m.shares[r], m.early[r] = map[string]int{}, map[string]int{}
	}
	switch ev.Type {
	case events.TypeRenderCreated:
		m.listed[r] = true
	case events.TypeShareCreated:
		m.listed[r] = true
		id := ev.Data["shareId"].(string)
		if _, ok := m.shares[r][id]; !ok {
			m.shares[r][id] = m.early[r][id]
		}
	case events.TypeShareViewed:
		id := ev.Data["shareId"].(string)
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
func workload(project string, renders, shares, views int) []eventstest.Event {
	var evs []eventstest.Event
	ids := make([]string, renders)
	for i := range ids {
		ids[i] = eventstest.NewUUID()
		evs = append(evs, eventstest.RenderCreated(project, ids[i]))
	}
	for s := range shares {
		for _, r := range ids {
			id := fmt.Sprintf("share-%03d", s)
			evs = append(evs, eventstest.ShareCreated(project, r, id, fmt.Sprintf("2026-06-05T10:%02d:%02dZ", s/60%60, s%60)))
		}
	}
	for v := range views {
		for s := range shares {
			for _, r := range ids {
				evs = append(evs, eventstest.ShareViewed(project, r, fmt.Sprintf("share-%03d", (s+v)%shares)))
			}
		}
	}
	return evs
}

// moreViews returns n views spread over the shares of m's renders.
func moreViews(m *model, n int) []eventstest.Event {
	var all [][2]string
	for _, r := range m.renders() {
		for id := range m.shares[r] {
			all = append(all, [2]string{r, id})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i][0]+all[i][1] < all[j][0]+all[j][1] })
	evs := make([]eventstest.Event, n)
	for i := range evs {
		rs := all[i%len(all)]
		evs[i] = eventstest.ShareViewed(m.project, rs[0], rs[1])
	}
	return evs
}
