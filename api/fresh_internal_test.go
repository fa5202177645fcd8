package api

import (
	"testing"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// TestFreshness checks when a stamp stays current: never before the first
// subscription or after a loss, not after its render's or project's change,
// a switch, a resubscription or an announcement that names nothing; still
// after another render's change.
func TestFreshness(t *testing.T) {
	t.Parallel()
	const project, render, other = "p-1", "r-1", "r-2"
	announced := func(ids ...string) readmodel.AppliedPos {
		a := readmodel.AppliedPos{Seq: 9, Announced: true, Changed: []uint32{}}
		for _, id := range ids {
			a.Changed = append(a.Changed, readmodel.ChangeID(id))
		}
		return a
	}
	steps := []struct {
		name    string
		report  readmodel.AppliedPos
		current bool // a stamp taken before the report is current after it
	}{
		{"another render changed", announced(other), true},
		{"no render changed", announced(), true},
		{"keys changed", readmodel.AppliedPos{Seq: 9, Announced: true, Keys: true, Changed: []uint32{}}, true},
		{"the render changed", announced(other, render), false},
		{"the project changed", announced(project), false},
		{"an announcement naming nothing", readmodel.AppliedPos{Seq: 9, Announced: true}, false},
		{"a switch", readmodel.AppliedPos{Seq: 9, Switched: true}, false},
		{"a resubscription", readmodel.AppliedPos{Seq: 9}, false},
		{"a loss", readmodel.AppliedPos{Lost: true}, false},
	}
	f := new(freshness)
	if _, live := f.take(project, render); live {
		t.Fatal("live before any report, want not")
	}
	f.follow(readmodel.AppliedPos{Seq: 1}) // subscribed
	for _, s := range steps {
		st, live := f.take(project, render)
		if !live || !f.current(st) {
			t.Fatalf("%s: a stamp just taken: live %v, current %v; want both", s.name, live, f.current(st))
		}
		f.follow(s.report)
		if got := f.current(st); got != s.current {
			t.Errorf("%s: current %v, want %v", s.name, got, s.current)
		}
		if s.report.Lost {
			if st, live := f.take(project, render); live || f.current(st) {
				t.Errorf("%s: a stamp taken after it is live %v, current %v; want neither", s.name, live, f.current(st))
			}
		}
	}
	f.follow(readmodel.AppliedPos{Seq: 10}) // subscribed again
	st, _ := f.take(project, render)
	if st.at = st.at.Add(-maxStampAge); f.current(st) {
		t.Errorf("a stamp %v old is current, want not", maxStampAge)
	}
}
