package readmodel

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
)

// TestApplyDeduplication checks the two guards of every event: the
// render's last applied sequence (a rerun is Stale) and the event id seen
// within the horizon (a republished event is Duplicate).
func TestApplyDeduplication(t *testing.T) {
	t.Parallel()
	const horizon = time.Hour
	tests := []struct {
		name string
		// second returns the op that follows a view of s1 with id "view"
		// at stream time first.Time.
		second func(f *fixture, first Op) Op
		want   Outcome
		clicks int64
	}{
		{"rerunning the op is Stale", func(f *fixture, first Op) Op { return first }, Stale, 1},
		{"a lower sequence is Stale", func(f *fixture, first Op) Op {
			op := f.op(eventstest.ShareViewed(projectA, renderA, "s1"), first.Time)
			op.Seq = first.Seq - 1
			return op
		}, Stale, 1},
		{"the same event id under a new sequence is Duplicate", func(f *fixture, first Op) Op {
			return f.op(eventstest.ShareViewed(projectA, renderA, "s1").WithID("view"), first.Time.Add(time.Minute))
		}, Duplicate, 1},
		{"the same event id at the horizon is Duplicate", func(f *fixture, first Op) Op {
			return f.op(eventstest.ShareViewed(projectA, renderA, "s1").WithID("view"), first.Time.Add(horizon))
		}, Duplicate, 1},
		{"the same event id beyond the horizon is Applied", func(f *fixture, first Op) Op {
			return f.op(eventstest.ShareViewed(projectA, renderA, "s1").WithID("view"), first.Time.Add(horizon+time.Millisecond))
		}, Applied, 2},
		{"another event id is Applied", func(f *fixture, first Op) Op {
			return f.op(eventstest.ShareViewed(projectA, renderA, "s1").WithID("view-2"), first.Time)
		}, Applied, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, horizon)
			f.apply(eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
			first := f.op(eventstest.ShareViewed(projectA, renderA, "s1").WithID("view"), time.Time{})
			if out := f.applyOps(f.gen, first); out[0] != Applied {
				t.Fatalf("first view: %v, want applied", out[0])
			}
			_, before := f.mustList(projectA, renderA)
			second := tt.second(f, first)
			if out := f.applyOps(f.gen, second); out[0] != tt.want {
				t.Fatalf("outcome %v, want %v", out[0], tt.want)
			}
			list, after := f.mustList(projectA, renderA)
			if got := list[0].ClickCount; got != tt.clicks {
				t.Errorf("clickCount = %d, want %d", got, tt.clicks)
			}
			if changed := after.Ver != before.Ver; changed != (tt.clicks == 2) {
				t.Errorf("ver %d -> %d, want changed = %v", before.Ver, after.Ver, tt.clicks == 2)
			}
		})
	}
}

// TestApplySemantics checks the contract's rules at the store: each row
// applies setup, then one event, and checks its outcome and the list.
func TestApplySemantics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	tests := []struct {
		name    string
		setup   []eventstest.Event
		event   eventstest.Event
		want    Outcome
		changed bool     // whether the list's version moves
		list    []string // summary of the list afterwards, nil to skip
	}{
		{
			name:    "render.created lists an empty render",
			event:   eventstest.RenderCreated(projectA, eventstest.UUID(1)),
			want:    Applied,
			changed: true,
			list:    []string{},
		},
		{
			name:    "share.created registers an unknown render",
			event:   eventstest.ShareCreated(projectA, eventstest.UUID(2), "s1", "2026-06-05T10:00:00Z"),
			want:    Applied,
			changed: true,
			list:    []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked=null/null msg=null token=cks_s1`},
		},
		{
			name:  "share.created twice changes nothing",
			setup: []eventstest.Event{eventstest.ShareCreated(projectA, eventstest.UUID(3), "s1", "2026-06-05T10:00:00Z").With("message", "first")},
			event: eventstest.ShareCreated(projectA, eventstest.UUID(3), "s1", "2026-06-05T11:00:00Z").
				With("message", "second").With("shareToken", "cks_other"),
			want: Applied,
			list: []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked=null/null msg="first" token=cks_s1`},
		},
		{
			name: "the first revocation wins",
			setup: []eventstest.Event{
				eventstest.ShareCreated(projectA, eventstest.UUID(4), "s1", "2026-06-05T10:00:00Z"),
				eventstest.ShareRevoked(projectA, eventstest.UUID(4), "s1", "2026-06-05T11:00:00Z", "revoked_by_partner"),
			},
			event: eventstest.ShareRevoked(projectA, eventstest.UUID(4), "s1", "2026-06-05T12:00:00Z", "second"),
			want:  Applied,
			list:  []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked="2026-06-05T11:00:00.000Z"/"revoked_by_partner" msg=null token=cks_s1`},
		},
		{
			name: "a null reason is a first revocation too",
			setup: []eventstest.Event{
				eventstest.ShareCreated(projectA, eventstest.UUID(5), "s1", "2026-06-05T10:00:00Z"),
				eventstest.ShareRevoked(projectA, eventstest.UUID(5), "s1", "2026-06-05T11:00:00Z", nil),
			},
			event: eventstest.ShareRevoked(projectA, eventstest.UUID(5), "s1", "2026-06-05T12:00:00Z", "second"),
			want:  Applied,
			list:  []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked="2026-06-05T11:00:00.000Z"/null msg=null token=cks_s1`},
		},
		{
			name: "views of a revoked share count",
			setup: []eventstest.Event{
				eventstest.ShareCreated(projectA, eventstest.UUID(6), "s1", "2026-06-05T10:00:00Z"),
				eventstest.ShareRevoked(projectA, eventstest.UUID(6), "s1", "2026-06-05T11:00:00Z", nil),
			},
			event:   eventstest.ShareViewed(projectA, eventstest.UUID(6), "s1"),
			want:    Applied,
			changed: true,
			list:    []string{`s1 2026-06-05T10:00:00.000Z clicks=1 revoked="2026-06-05T11:00:00.000Z"/null msg=null token=cks_s1`},
		},
		{
			name: "views before creation are counted once the share exists",
			setup: []eventstest.Event{
				eventstest.RenderCreated(projectA, eventstest.UUID(7)),
				eventstest.ShareViewed(projectA, eventstest.UUID(7), "s1"),
				eventstest.ShareViewed(projectA, eventstest.UUID(7), "s1"),
				eventstest.ShareViewed(projectA, eventstest.UUID(7), "s1"),
			},
			event:   eventstest.ShareCreated(projectA, eventstest.UUID(7), "s1", "2026-06-05T10:00:00Z"),
			want:    Applied,
			changed: true,
			list:    []string{`s1 2026-06-05T10:00:00.000Z clicks=3 revoked=null/null msg=null token=cks_s1`},
		},
		{
			name:  "a view before creation does not change the list",
			setup: []eventstest.Event{eventstest.RenderCreated(projectA, eventstest.UUID(8))},
			event: eventstest.ShareViewed(projectA, eventstest.UUID(8), "s1"),
			want:  Applied,
			list:  []string{},
		},
		{
			name: "a revocation before creation shows once the share exists",
			setup: []eventstest.Event{
				eventstest.RenderCreated(projectA, eventstest.UUID(9)),
				eventstest.ShareRevoked(projectA, eventstest.UUID(9), "s1", "2026-06-05T11:00:00Z", "early"),
			},
			event:   eventstest.ShareCreated(projectA, eventstest.UUID(9), "s1", "2026-06-05T10:00:00Z"),
			want:    Applied,
			changed: true,
			list:    []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked="2026-06-05T11:00:00.000Z"/"early" msg=null token=cks_s1`},
		},
		{
			name:  "share.created of another project is Mismatch",
			setup: []eventstest.Event{eventstest.ShareCreated(projectA, eventstest.UUID(10), "s1", "2026-06-05T10:00:00Z")},
			event: eventstest.ShareCreated(projectB, eventstest.UUID(10), "s2", "2026-06-05T11:00:00Z"),
			want:  Mismatch,
			list:  []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked=null/null msg=null token=cks_s1`},
		},
		{
			name:  "share.viewed of another project is Mismatch",
			setup: []eventstest.Event{eventstest.ShareCreated(projectA, eventstest.UUID(11), "s1", "2026-06-05T10:00:00Z")},
			event: eventstest.ShareViewed(projectB, eventstest.UUID(11), "s1"),
			want:  Mismatch,
			list:  []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked=null/null msg=null token=cks_s1`},
		},
		{
			name:  "share.revoked of another project is Mismatch",
			setup: []eventstest.Event{eventstest.ShareCreated(projectA, eventstest.UUID(12), "s1", "2026-06-05T10:00:00Z")},
			event: eventstest.ShareRevoked(projectB, eventstest.UUID(12), "s1", "2026-06-05T11:00:00Z", nil),
			want:  Mismatch,
			list:  []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked=null/null msg=null token=cks_s1`},
		},
		{
			name:  "render.deleted of another project is Mismatch",
			setup: []eventstest.Event{eventstest.ShareCreated(projectA, eventstest.UUID(13), "s1", "2026-06-05T10:00:00Z")},
			event: eventstest.RenderDeleted(projectB, eventstest.UUID(13)),
			want:  Mismatch,
			list:  []string{`s1 2026-06-05T10:00:00.000Z clicks=0 revoked=null/null msg=null token=cks_s1`},
		},
		{
			name:  "render.created of another project is Mismatch",
			setup: []eventstest.Event{eventstest.RenderCreated(projectA, eventstest.UUID(14))},
			event: eventstest.RenderCreated(projectB, eventstest.UUID(14)),
			want:  Mismatch,
			list:  []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			render := tt.event.Render
			for i, out := range f.apply(tt.setup...) {
				if out != Applied {
					t.Fatalf("setup event %d: %v", i, out)
				}
			}
			var before *List
			if len(tt.setup) > 0 {
				_, before = f.mustList(projectA, render)
			}
			if out := f.apply(tt.event); out[0] != tt.want {
				t.Fatalf("outcome %v, want %v", out[0], tt.want)
			}
			list, after := f.mustList(projectA, render)
			if tt.list != nil && !slices.Equal(summary(list), tt.list) {
				t.Errorf("list\n%q\nwant\n%q", summary(list), tt.list)
			}
			if after.Seq != f.seq {
				t.Errorf("seq = %d, want %d (the event's, whatever its outcome)", after.Seq, f.seq)
			}
			if before != nil {
				if changed := after.Ver != before.Ver; changed != tt.changed {
					t.Errorf("ver %d -> %d, want changed = %v", before.Ver, after.Ver, tt.changed)
				}
			}
			if _, _, err := f.list(projectB, render); !errors.Is(err, ErrNotFound) {
				t.Errorf("list in the other project: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestApplyUnlistedRender(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	f.apply(eventstest.ShareViewed(projectA, renderA, "s1"), eventstest.ShareRevoked(projectA, renderA, "s1", "2026-06-05T11:00:00Z", nil))
	if _, _, err := f.list(projectA, renderA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a render known only from views and revocations: err = %v, want ErrNotFound", err)
	}
	f.apply(eventstest.RenderCreated(projectA, renderA))
	if list, _ := f.mustList(projectA, renderA); len(list) != 0 {
		t.Fatalf("after render.created: %q, want no shares", summary(list))
	}
	f.apply(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	list, _ := f.mustList(projectA, renderA)
	if want := []string{`s1 2026-06-05T10:00:00.000Z clicks=1 revoked="2026-06-05T11:00:00.000Z"/null msg=null token=cks_s1`}; !slices.Equal(summary(list), want) {
		t.Errorf("list %q, want %q", summary(list), want)
	}
}

func TestApplyRenderDeleted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	f.apply(
		eventstest.RenderCreated(projectA, renderA),
		eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareViewed(projectA, renderA, "s1"),
		eventstest.ShareRevoked(projectA, renderA, "s1", "2026-06-05T11:00:00Z", nil),
		eventstest.ShareCreated(projectA, renderB, "s2", "2026-06-05T10:00:00Z"),
	)
	if out := f.apply(eventstest.RenderDeleted(projectA, renderA)); out[0] != Applied {
		t.Fatalf("render.deleted: %v, want applied", out[0])
	}
	if _, _, err := f.list(projectA, renderA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("list after render.deleted: err = %v, want ErrNotFound", err)
	}
	keys := renderKeysOf(f.gen, renderA)
	for _, k := range keys[kShares:] {
		if n := f.rdb.Exists(context.Background(), k).Val(); n != 0 {
			t.Errorf("%s still exists after render.deleted", k)
		}
	}
	later := []eventstest.Event{
		eventstest.ShareCreated(projectA, renderA, "s3", "2026-06-05T12:00:00Z"),
		eventstest.ShareViewed(projectA, renderA, "s1"),
		eventstest.ShareRevoked(projectA, renderA, "s1", "2026-06-05T12:00:00Z", nil),
		eventstest.RenderCreated(projectA, renderA),
		eventstest.RenderDeleted(projectA, renderA),
	}
	for i, out := range f.apply(later...) {
		if out != Ignored {
			t.Errorf("%s after render.deleted: %v, want %v", later[i].Type, out, Ignored)
		}
	}
	if _, _, err := f.list(projectA, renderA); !errors.Is(err, ErrNotFound) {
		t.Errorf("list after later events: err = %v, want ErrNotFound", err)
	}
	for _, k := range keys[kShares:] {
		if n := f.rdb.Exists(context.Background(), k).Val(); n != 0 {
			t.Errorf("%s exists again after later events", k)
		}
	}
	if list, _ := f.mustList(projectA, renderB); len(list) != 1 {
		t.Errorf("another render: %q, want its share untouched", summary(list))
	}
}

func TestApplyKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	const key, other = "ck_live_readmodel_test_key", "ck_live_readmodel_other_key"
	ctx := context.Background()
	lookup := func(k string) (Key, error) { return f.store.Key(ctx, events.KeyHash(k)) }

	created := f.op(eventstest.APIKeyCreated(projectA, "key_1", key, "live"), time.Time{})
	if out := f.applyOps(f.gen, created); out[0] != Applied {
		t.Fatalf("apikey.created: %v", out[0])
	}
	if got, err := lookup(key); err != nil || got != (Key{ID: "key_1", ProjectID: projectA, Environment: "live"}) {
		t.Fatalf("Key = %+v, %v; want key_1 of project A, live, not revoked", got, err)
	}
	steps := []struct {
		name string
		ev   *eventstest.Event
		want Outcome
		// the lookups afterwards
		key      Key
		otherErr error
	}{
		{"rerunning apikey.created is Stale", nil, Stale,
			Key{ID: "key_1", ProjectID: projectA, Environment: "live"}, ErrNotFound},
		{"a second apikey.created of the key id changes nothing", ptr(eventstest.APIKeyCreated(projectA, "key_1", other, "test")), Applied,
			Key{ID: "key_1", ProjectID: projectA, Environment: "live"}, ErrNotFound},
		{"apikey.revoked of another project is Mismatch", ptr(eventstest.APIKeyRevoked(projectB, "key_1")), Mismatch,
			Key{ID: "key_1", ProjectID: projectA, Environment: "live"}, ErrNotFound},
		{"apikey.revoked revokes", ptr(eventstest.APIKeyRevoked(projectA, "key_1")), Applied,
			Key{ID: "key_1", ProjectID: projectA, Environment: "live", Revoked: true}, ErrNotFound},
		{"a revocation is final", ptr(eventstest.APIKeyCreated(projectA, "key_1", key, "live")), Applied,
			Key{ID: "key_1", ProjectID: projectA, Environment: "live", Revoked: true}, ErrNotFound},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			op := created
			if st.ev != nil {
				op = f.op(*st.ev, time.Time{})
			}
			if out := f.applyOps(f.gen, op); out[0] != st.want {
				t.Fatalf("outcome %v, want %v", out[0], st.want)
			}
			if got, err := lookup(key); err != nil || got != st.key {
				t.Errorf("Key = %+v, %v; want %+v", got, err, st.key)
			}
			if _, err := lookup(other); !errors.Is(err, st.otherErr) {
				t.Errorf("other key: err = %v, want %v", err, st.otherErr)
			}
		}) {
			return
		}
	}
	t.Run("a revocation before the creation revokes the key once created", func(t *testing.T) {
		const late = "ck_test_readmodel_revoked_early"
		f.apply(eventstest.APIKeyRevoked(projectA, "key_2"))
		if _, err := lookup(late); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoked, not created: err = %v, want ErrNotFound", err)
		}
		f.apply(eventstest.APIKeyCreated(projectA, "key_2", late, "test"))
		if got, err := lookup(late); err != nil || got != (Key{ID: "key_2", ProjectID: projectA, Environment: "test", Revoked: true}) {
			t.Errorf("Key = %+v, %v; want key_2 revoked", got, err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestApplyProject(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	f.apply(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	set := f.op(eventstest.ProjectUpdated(projectA, "https://share.example.com/").WithID("base-1"), time.Time{})
	steps := []struct {
		name    string
		op      func() Op
		want    Outcome
		base    string
		changed bool
	}{
		{"project.updated sets the base without its trailing slash", func() Op { return set }, Applied, "https://share.example.com", true},
		{"rerunning it is Stale", func() Op { return set }, Stale, "https://share.example.com", false},
		{"its id under a new sequence is Duplicate", func() Op {
			return f.op(eventstest.ProjectUpdated(projectA, "https://other.example.com").WithID("base-1"), time.Time{})
		}, Duplicate, "https://share.example.com", false},
		{"another project's update changes nothing here", func() Op {
			return f.op(eventstest.ProjectUpdated(projectB, "https://b.example.com"), time.Time{})
		}, Applied, "https://share.example.com", false},
		{"null removes the base", func() Op { return f.op(eventstest.ProjectUpdated(projectA, nil), time.Time{}) }, Applied, "", true},
	}
	_, prev := f.mustList(projectA, renderA)
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) {
			if out := f.applyOps(f.gen, st.op()); out[0] != st.want {
				t.Fatalf("outcome %v, want %v", out[0], st.want)
			}
			_, l := f.mustList(projectA, renderA)
			if l.ShareBase != st.base {
				t.Errorf("ShareBase = %q, want %q", l.ShareBase, st.base)
			}
			if changed := l.ProjectVer != prev.ProjectVer; changed != st.changed {
				t.Errorf("ProjectVer %d -> %d, want changed = %v", prev.ProjectVer, l.ProjectVer, st.changed)
			}
			prev = l
		}) {
			return
		}
	}
}

// TestListNotModified checks List's answer to a caller's versions.
func TestListNotModified(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	f.apply(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"), eventstest.ProjectUpdated(projectA, "https://a.example.com"))
	_, cur := f.mustList(projectA, renderA)
	tests := []struct {
		name        string
		have        Versions
		notModified bool
	}{
		{"current versions", cur.Versions(), true},
		{"an old list version", Versions{Ver: cur.Ver - 1, ProjectVer: cur.ProjectVer, Salt: cur.Salt}, false},
		{"an old project version", Versions{Ver: cur.Ver, ProjectVer: cur.ProjectVer - 1, Salt: cur.Salt}, false},
		{"another generation or repair (salt)", Versions{Ver: cur.Ver, ProjectVer: cur.ProjectVer, Salt: cur.Salt + 1}, false},
		{"both old", Versions{}, false},
		{"any (If-None-Match: *)", Versions{Any: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := f.store.List(ctx, projectA, renderA, &tt.have)
			if err != nil {
				t.Fatal(err)
			}
			if l.NotModified != tt.notModified {
				t.Fatalf("NotModified = %v, want %v", l.NotModified, tt.notModified)
			}
			if n := l.Len(); tt.notModified && n != 0 || !tt.notModified && n != 1 {
				t.Errorf("Len = %d: a not-modified list reads no shares, another reads them all", n)
			}
			if l.Seq != cur.Seq || l.Versions() != cur.Versions() {
				t.Errorf("versions %d/%+v, want %d/%+v", l.Seq, l.Versions(), cur.Seq, cur.Versions())
			}
		})
	}
}

// TestApplyCheckpointAndAnnounce checks what Apply does besides the ops:
// raising the resume position and announcing the last sequence.
func TestApplyCheckpointAndAnnounce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	positions := f.follow()
	if got, want := <-positions, (AppliedPos{Seq: 0}); !reflect.DeepEqual(got, want) { // subscribed: the saved position
		t.Fatalf("first position %+v, want %+v", got, want)
	}
	ops := []Op{f.op(eventstest.RenderCreated(projectA, renderA), time.Time{}), f.op(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"), time.Time{})}
	out, ctl, err := f.store.Apply(ctx, f.gen, ops, 7, true)
	if err != nil || !reflect.DeepEqual(out, []Result{{Outcome: Applied}, {Outcome: Applied}}) {
		t.Fatalf("Apply = %v, %v", out, err)
	}
	if ctl.Active != f.gen || ctl.Pos[f.gen] != 7 {
		t.Errorf("control = %+v, want active %s at position 7", ctl, f.gen)
	}
	if got, want := <-positions, (AppliedPos{Seq: ops[1].Seq, Announced: true}); got.Seq != want.Seq || !got.Announced || got.Keys || len(got.Parts) != 0 {
		t.Errorf("announced %+v, want %+v", got, want)
	}
	if _, ctl, err = f.store.Apply(ctx, f.gen, nil, 5, false); err != nil || ctl.Pos[f.gen] != 7 {
		t.Errorf("a lower checkpoint: position %d (%v), want 7 kept", ctl.Pos[f.gen], err)
	}
}

// TestFollowAppliedResubscribes checks that FollowApplied, when its
// connection is lost, reports it Lost, subscribes again and reads the saved
// position again: a position saved but not announced meanwhile is not
// missed.
func TestFollowAppliedResubscribes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	positions := f.follow()
	if got := <-positions; got.Announced {
		t.Fatalf("first position %+v, want the saved one", got)
	}
	if err := f.store.SetPos(ctx, f.gen, 42); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []AppliedPos{{Lost: true}, {Seq: 42}} {
		select {
		case got := <-positions:
			if !reflect.DeepEqual(got, want) {
				t.Errorf("after the connection was lost: %+v, want %+v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %+v within 10s of the connection being lost", want)
		}
	}
}

// TestApplyStaleMismatch checks that a redelivered event of another project
// answers StaleMismatch, not Stale, so the projector dead-letters it again
// (its first dead letter may have been lost to a crash).
func TestApplyStaleMismatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	f.apply(eventstest.RenderCreated(projectA, renderA))
	foreign := f.op(eventstest.ShareViewed(projectB, renderA, "s1"), time.Time{})
	if out := f.applyOps(f.gen, foreign); out[0] != Mismatch {
		t.Fatalf("first delivery: %v, want %v", out[0], Mismatch)
	}
	if out := f.applyOps(f.gen, foreign); out[0] != StaleMismatch {
		t.Fatalf("redelivery: %v, want %v", out[0], StaleMismatch)
	}
	own := f.op(eventstest.ShareViewed(projectA, renderA, "s1"), time.Time{})
	f.applyOps(f.gen, own)
	if out := f.applyOps(f.gen, own); out[0] != Stale {
		t.Fatalf("redelivery of the render's own event: %v, want %v", out[0], Stale)
	}
}

// TestSeenSetsExpire checks that the dedupe sets, and only they, carry a
// TTL of the horizon plus an hour, so a render or project that goes quiet
// does not keep its digests forever.
func TestSeenSetsExpire(t *testing.T) {
	t.Parallel()
	const horizon = 2 * time.Hour
	f := newFixture(t, horizon)
	f.apply(eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareViewed(projectA, renderA, "s1"), eventstest.ProjectUpdated(projectA, "https://share.example.com"))
	ctx := context.Background()
	keys := renderKeysOf(f.gen, renderA)
	seen := []string{keys[kSeen], projectKeys(f.gen, projectA)[1]}
	for _, k := range seen {
		ttl, err := f.rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := horizon + time.Hour; ttl <= want-time.Minute || ttl > want {
			t.Errorf("PTTL %s = %v, want about %v", k, ttl, want)
		}
	}
	for _, k := range append(keys[:kSeen:kSeen], projectKeys(f.gen, projectA)[0]) {
		// -1: no TTL; -2: no such key (nothing revoked here).
		if ttl, err := f.rdb.PTTL(ctx, k).Result(); err != nil || ttl >= 0 {
			t.Errorf("PTTL %s = %v (%v), want none: only dedupe sets expire", k, ttl, err)
		}
	}
}
