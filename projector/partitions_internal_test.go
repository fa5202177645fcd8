package projector

import (
	"testing"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

func TestShare(t *testing.T) {
	members := []string{"a", "b", "c"}
	live := readmodel.Control{Active: "g1"}
	for _, tt := range []struct {
		held map[string]int
		want []int
	}{
		{map[string]int{}, []int{3, 3, 2}},
		{map[string]int{"c": 8}, []int{3, 2, 3}},                 // c held them all: it keeps one of the extras
		{map[string]int{"a": 2, "b": 3, "c": 3}, []int{2, 3, 3}}, // already fair: nothing moves
	} {
		total := 0
		for i, m := range members {
			got := share(m, members, tt.held, 8, live)
			if got != tt.want[i] {
				t.Errorf("held %v: share(%s) of 8 among 3 = %d, want %d", tt.held, m, got, tt.want[i])
			}
			total += got
		}
		if total != 8 {
			t.Errorf("held %v: shares add up to %d, want 8", tt.held, total)
		}
	}
	if got := share("b", []string{"a", "b"}, map[string]int{"b": 1}, 1, live); got != 1 {
		t.Errorf("one partition held by b, a joins: b's share = %d, want 1 (it keeps it)", got)
	}
	if got := share("x", members, nil, 8, live); got != 0 {
		t.Errorf("a non-member's share = %d, want 0", got)
	}
	for _, ctl := range []readmodel.Control{{}, {Active: "g1", Handover: "g2"}, {Active: "g1", Heal: true}} {
		held := map[string]int{"b": 5}
		if a, b := share("a", members, held, 8, ctl), share("b", members, held, 8, ctl); a != 0 || b != 8 {
			t.Errorf("generation work %+v: shares %d, %d; want every partition to the biggest holder", ctl, a, b)
		}
	}
}

func TestPartSet(t *testing.T) {
	const n = 4
	subject := func(q int) string { // a render subject of partition q
		for i := 0; ; i++ {
			s := events.Subject(events.TypeShareViewed, "r"+string(rune('a'+i%26))+string(rune('a'+i/26)))
			if events.Partition(s, n) == q {
				return s
			}
		}
	}
	ctl := readmodel.Control{Part: map[string]map[int]uint64{"g": {0: 10, 1: 20, 2: 5, 3: 7}}}
	s := newPartSet(n, []int{1, 2}, ctl, "g")
	if got := s.start(); got != 5 {
		t.Errorf("start = %d, want the lowest owned position 5", got)
	}
	for _, tt := range []struct {
		q    int
		seq  uint64
		want bool
	}{{0, 100, false}, {1, 20, false}, {1, 21, true}, {2, 6, true}, {3, 100, false}} {
		if got := s.keeps(subject(tt.q), tt.seq); got != tt.want {
			t.Errorf("keeps(partition %d, seq %d) = %v, want %v", tt.q, tt.seq, got, tt.want)
		}
	}
	if got := s.markCap(50, ctl, "g"); got != 7 {
		t.Errorf("markCap = %d, want 7 (partition 3, not owned)", got)
	}
	if s.all() || !newPartSet(n, nil, ctl, "g").all() {
		t.Error("all() wrong")
	}
	if cp := (run{parts: s, token: "t"}).checkpoint(9); cp.Token != "t" || len(cp.Parts) != 2 || cp.Seq != 9 {
		t.Errorf("checkpoint = %+v", cp)
	}
}
