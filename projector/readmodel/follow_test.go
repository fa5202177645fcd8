package readmodel

import (
	"context"
	"reflect"
	"strconv"
	"testing"
	"time"

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

// TestAnnouncementKeys checks that a batch holding a key event is
// announced with the "keys" flag, as "<seq> keys" (no key, no hash), and
// that other batches are announced as before, a bare sequence.
func TestAnnouncementKeys(t *testing.T) {
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
	batches := []struct {
		name string
		evs  []eventstest.Event
		keys bool
	}{
		{"no key event", []eventstest.Event{eventstest.RenderCreated(projectA, renderA)}, false},
		{"a key created", []eventstest.Event{eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
			eventstest.APIKeyCreated(projectA, "key_1", "ck_live_announcement_test", "live")}, true},
		{"a key revoked", []eventstest.Event{eventstest.APIKeyRevoked(projectA, "key_1"),
			eventstest.ShareViewed(projectA, renderA, "s1")}, true},
		{"a revocation of an unknown key", []eventstest.Event{eventstest.APIKeyRevoked(projectA, "key_404")}, true},
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
		if got, want := next(t, positions), (AppliedPos{Seq: last, Announced: true, Keys: b.keys}); !reflect.DeepEqual(got, want) {
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
		if msg.Payload != want {
			t.Errorf("%s: payload %q, want %q", b.name, msg.Payload, want)
		}
	}
}

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
	for _, tt := range []struct {
		name    string
		fixture func(t *testing.T) *fixture
	}{
		{"single node", func(t *testing.T) *fixture { return newFixture(t, 0) }},
		{"cluster", func(t *testing.T) *fixture { f, _ := newClusterFixture(t); return f }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			positions := tt.fixture(t).follow()
			next(t, positions)
			select {
			case a := <-positions:
				t.Fatalf("quiet subscription: reported %+v, want nothing", a)
			case <-time.After(4 * followSilence):
			}
		})
	}
}
