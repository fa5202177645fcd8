package readmodel

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
)

// next is the next report of positions, failing after 10s.
func next(t testing.TB, positions <-chan AppliedPos) AppliedPos {
	t.Helper()
	select {
	case a := <-positions:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no report from FollowApplied within 10s")
		return AppliedPos{}
	}
}

// TestAnnouncementKeysAndChanges checks that a batch is announced with
// the "keys" flag when it held a key event (no key, no hash), and with the
// ChangeIDs of the renders and projects it may have changed ("c=", empty
// when none), and that FollowApplied reports both.
func TestAnnouncementKeysAndChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	raw := f.rdb.Subscribe(ctx, appliedChannel())
	t.Cleanup(func() { _ = raw.Close() })
	if _, err := raw.Receive(ctx); err != nil { // the subscription
		t.Fatal(err)
	}
	positions := f.follow()
	if got := next(t, positions); got.Announced || got.Lost {
		t.Fatalf("first report %+v, want the saved position", got)
	}
	rA, rB, pA := ChangeID(renderA), ChangeID(renderB), ChangeID(projectA)
	batches := []struct {
		name    string
		evs     []eventstest.Event
		keys    bool
		changed []uint32
	}{
		{"a render created", []eventstest.Event{eventstest.RenderCreated(projectA, renderA)}, false, []uint32{rA}},
		{"a key created", []eventstest.Event{eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
			eventstest.APIKeyCreated(projectA, "key_1", "ck_live_announcement_test", "live")}, true, []uint32{rA}},
		{"a key revoked", []eventstest.Event{eventstest.APIKeyRevoked(projectA, "key_1"),
			eventstest.ShareViewed(projectA, renderA, "s1")}, true, []uint32{rA}},
		{"a revocation of an unknown key", []eventstest.Event{eventstest.APIKeyRevoked(projectA, "key_404")}, true, []uint32{}},
		{"two renders and a project", []eventstest.Event{eventstest.ShareCreated(projectA, renderB, "s2", "2026-06-05T10:00:00Z"),
			eventstest.ProjectUpdated(projectA, "https://share.example"), eventstest.ShareViewed(projectA, renderA, "s1"),
			eventstest.ShareRevoked(projectA, renderB, "s2", "2026-06-05T11:00:00Z", nil), eventstest.RenderDeleted(projectA, renderA)},
			false, sorted(rA, rB, pA)},
	}
	for _, b := range batches {
		ops := make([]Op, len(b.evs))
		for i, e := range b.evs {
			ops[i] = f.op(e, time.Time{})
		}
		if _, _, err := f.store.Apply(ctx, f.gen, ops, 0, true); err != nil {
			t.Fatal(err)
		}
		last := ops[len(ops)-1].Seq
		if got, want := next(t, positions), (AppliedPos{Seq: last, Announced: true, Keys: b.keys, Changed: b.changed}); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: reported %+v, want %+v", b.name, got, want)
		}
		msg, err := raw.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := strconv.FormatUint(last, 10)
		if b.keys {
			want += " keys"
		}
		want += " c="
		for i, id := range b.changed {
			if i > 0 {
				want += ","
			}
			want += strconv.FormatUint(uint64(id), 36)
		}
		if msg.Payload != want {
			t.Errorf("%s: payload %q, want %q", b.name, msg.Payload, want)
		}
	}
}

// TestAnnouncementBounded checks that a batch changing more renders than
// an announcement names is announced without names (anything may have
// changed), and that a batch of many events of few renders names each
// once.
func TestAnnouncementBounded(t *testing.T) {
	t.Parallel()
	many := make([]Op, maxChanged+1)
	for i := range many {
		many[i] = Op{Seq: uint64(i + 1), Event: events.Event{Type: events.TypeShareViewed, RenderID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i)}}
	}
	a, ok := parseAnnouncement(announcement(many, nil))
	if !ok || a.Changed != nil || a.Seq != uint64(len(many)) {
		t.Errorf("%d renders: reported %+v, want no names", len(many), a)
	}
	for i := range many {
		many[i].Event.RenderID = renderB
	}
	many[7].Event.RenderID = strings.ToUpper(renderA)
	payload := announcement(many, []int{2})
	if a, _ := parseAnnouncement(payload); !reflect.DeepEqual(a.Changed, sorted(ChangeID(renderA), ChangeID(renderB))) || !reflect.DeepEqual(a.Parts, []int{2}) {
		t.Errorf("%d events of 2 renders: %q reported %+v", len(many), payload, a)
	}
	if len(payload) > 64 {
		t.Errorf("payload of 2 renders is %d bytes, want a few dozen", len(payload))
	}
}

func sorted(ids ...uint32) []uint32 { slices.Sort(ids); return ids }

// TestParseAnnouncement checks the payloads FollowApplied accepts: those
// of older projectors, and words it does not know after the sequence.
func TestParseAnnouncement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		payload string
		want    AppliedPos
		ok      bool
	}{
		{"42", AppliedPos{Seq: 42, Announced: true}, true},
		{"42 keys", AppliedPos{Seq: 42, Announced: true, Keys: true}, true},
		{"42 renders keys", AppliedPos{Seq: 42, Announced: true, Keys: true}, true},
		{"42 later", AppliedPos{Seq: 42, Announced: true}, true},
		{"42 keys p=0,3", AppliedPos{Seq: 42, Announced: true, Keys: true, Parts: []int{0, 3}}, true},
		{"42 p=5,x,-1", AppliedPos{Seq: 42, Announced: true, Parts: []int{5}}, true},
		{"42 keys p=1 c=", AppliedPos{Seq: 42, Announced: true, Keys: true, Parts: []int{1}, Changed: []uint32{}}, true},
		{"42 c=a,zz,0", AppliedPos{Seq: 42, Announced: true, Changed: []uint32{10, 1295, 0}}, true},
		{"42 c=a,-1", AppliedPos{Seq: 42, Announced: true}, true},      // not a ChangeID: anything
		{"42 c=a,1z141z4", AppliedPos{Seq: 42, Announced: true}, true}, // over 32 bits: anything
		{"0 c=a", AppliedPos{Seq: 0, Announced: true, Changed: []uint32{10}}, true},
		{"", AppliedPos{}, false},
		{"keys", AppliedPos{}, false},
		{"-1 keys", AppliedPos{}, false},
	}
	for _, tt := range tests {
		got, ok := parseAnnouncement(tt.payload)
		if !reflect.DeepEqual(got, tt.want) || ok != tt.ok {
			t.Errorf("parseAnnouncement(%q) = %+v, %v; want %+v, %v", tt.payload, got, ok, tt.want, tt.ok)
		}
	}
}

// TestFollowAppliedSwitch checks that a generation switch is reported at
// once, with the new generation's saved position.
func TestFollowAppliedSwitch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	positions := f.follow()
	next(t, positions)
	gen := NewGen(time.Now().Add(time.Second))
	if err := f.store.SetPos(ctx, gen, 9); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.store.Activate(ctx, gen, f.gen); err != nil || !ok {
		t.Fatalf("activate: ok=%v err=%v", ok, err)
	}
	if got, want := next(t, positions), (AppliedPos{Seq: 9, Switched: true}); !reflect.DeepEqual(got, want) {
		t.Errorf("after the switch: %+v, want %+v", got, want)
	}
}

// TestFollowAppliedSilent checks that a subscription that falls silent
// (Redis paused with SIGSTOP: the connection stays open) is reported Lost
// within about a second, and that FollowApplied reports the saved position
// again once Redis answers.
func TestFollowAppliedSilent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	positions := f.follow()
	next(t, positions)
	f.srv.Pause(t)
	paused := time.Now()
	if got, want := next(t, positions), (AppliedPos{Lost: true}); !reflect.DeepEqual(got, want) {
		t.Fatalf("while paused: %+v, want %+v", got, want)
	}
	if d := time.Since(paused); d > 2*time.Second {
		t.Errorf("lost reported %v after the pause, want within about a second", d)
	}
	f.srv.Resume(t)
	if got := next(t, positions); got.Announced || got.Lost {
		t.Errorf("after the resume: %+v, want the saved position", got)
	}
}

// TestFollowAppliedQuietStaysLive checks that a subscription to which
// nothing is announced for several times followSilence is kept, its pings
// answered, on a single node and on a Redis Cluster (sharded pub/sub): a
// quiet projector does not empty the readers' caches.
func TestFollowAppliedQuietStaysLive(t *testing.T) {
	t.Parallel()
	onNodeAndCluster(t, func(t *testing.T, f *fixture) {
		positions := f.follow()
		next(t, positions)
		select {
		case a := <-positions:
			t.Fatalf("quiet subscription: reported %+v, want nothing", a)
		case <-time.After(4 * followSilence):
		}
	})
}
