package readmodel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
)

// fill writes renders renders with a share, a view and a revocation each,
// plus a project and an API key, into generation gen.
func (f *fixture) fill(gen string, renders int) {
	f.t.Helper()
	var ops []Op
	for i := range renders {
		r := eventstest.UUID(i)
		for _, e := range []eventstest.Event{
			eventstest.RenderCreated(projectA, r),
			eventstest.ShareCreated(projectA, r, "s1", "2026-06-05T10:00:00Z"),
			eventstest.ShareViewed(projectA, r, "s1"),
			eventstest.ShareRevoked(projectA, r, "s1", "2026-06-05T11:00:00Z", nil),
		} {
			ops = append(ops, f.op(e, time.Time{}))
		}
	}
	ops = append(ops, f.op(eventstest.ProjectUpdated(projectA, "https://a.example.com"), time.Time{}),
		f.op(eventstest.APIKeyCreated(projectA, "key_1", "ck_live_fill_key", "live"), time.Time{}))
	for i, out := range f.applyOps(gen, ops...) {
		if out != Applied {
			f.t.Fatalf("fill %s: op %d: %v", gen, i, out)
		}
	}
}

func TestDropGen(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	// drop's name is a prefix of keep's: the pattern must not confuse them.
	const drop, keep = "gdrop", "gdrop1"
	// 4 keys a render (more than one UNLINK batch), then the project's hash
	// and seen set and the key index, registrations and record.
	f.fill(drop, 300)
	f.fill(keep, 20)
	f.fill(f.gen, 5)
	for gen, pos := range map[string]uint64{drop: 10, keep: 20} {
		if err := f.store.SetPos(ctx, gen, pos); err != nil {
			t.Fatal(err)
		}
	}

	all := f.scanKeys("*")
	dropped := f.scanKeys(genPattern(drop))
	if want := 300*4 + 5; len(dropped) != want {
		t.Fatalf("generation %s has %d keys, want %d", drop, len(dropped), want)
	}
	var rest []string
	for _, k := range all {
		if !slices.Contains(dropped, k) {
			rest = append(rest, k)
		}
	}

	t.Run("names that are no generation are refused", func(t *testing.T) {
		for _, gen := range []string{"", "*", "gdrop*", "g:1", "g?"} {
			if n, err := f.store.DropGen(ctx, gen); err == nil || n != 0 {
				t.Errorf("DropGen(%q) = %d, %v; want an error", gen, n, err)
			}
		}
		if got := f.scanKeys("*"); !slices.Equal(got, all) {
			t.Fatalf("refused drops changed the keys: %d keys, want %d", len(got), len(all))
		}
	})
	t.Run("every key of the generation and no other", func(t *testing.T) {
		n, err := f.store.DropGen(ctx, drop)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(dropped)) {
			t.Errorf("DropGen reported %d keys, want %d", n, len(dropped))
		}
		if got := f.scanKeys("*"); !slices.Equal(got, rest) {
			t.Errorf("after DropGen: %d keys, want the %d of the other generations and the control hash", len(got), len(rest))
		}
		ctl, err := f.store.ReadControl(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ctl.Pos[drop]; ok || ctl.Pos[keep] != 20 || ctl.Active != f.gen {
			t.Errorf("control %+v, want %s's position gone, %s's kept and %s active", ctl, drop, keep, f.gen)
		}
		if list, _ := f.mustList(projectA, eventstest.UUID(1)); len(list) != 1 {
			t.Errorf("the active generation lost its data: %q", summary(list))
		}
	})
	t.Run("a generation without keys", func(t *testing.T) {
		if n, err := f.store.DropGen(ctx, drop); err != nil || n != 0 {
			t.Errorf("DropGen again = %d, %v; want 0, nil", n, err)
		}
	})
}

func TestSwapRender(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	scratch := scratchGen(f.gen)
	ops := []Op{
		f.op(eventstest.RenderCreated(projectA, renderA), time.Time{}),
		f.op(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"), time.Time{}),
		f.op(eventstest.ShareCreated(projectA, renderA, "s2", "2026-06-05T10:01:00Z"), time.Time{}),
		f.op(eventstest.ShareRevoked(projectA, renderA, "s2", "2026-06-05T11:00:00Z", "live only"), time.Time{}),
		f.op(eventstest.ShareViewed(projectA, renderA, "s1"), time.Time{}),
	}
	f.applyOps(f.gen, ops...)
	f.apply(eventstest.ShareCreated(projectA, renderB, "b1", "2026-06-05T10:00:00Z"))
	otherBefore, _ := f.mustList(projectA, renderB)
	liveBefore, live := f.mustList(projectA, renderA)

	// The scratch copy skips the revocation at ops[3], so a swap shows.
	f.applyOps(scratch, ops[:3]...)
	t.Run("a copy behind the live keys is not swapped", func(t *testing.T) {
		need, err := f.store.SwapRender(ctx, f.gen, renderA)
		if err != nil {
			t.Fatal(err)
		}
		if need != live.Seq {
			t.Errorf("SwapRender = %d, want the live sequence %d", need, live.Seq)
		}
		if got, _ := f.mustList(projectA, renderA); !slices.Equal(summary(got), summary(liveBefore)) {
			t.Errorf("live list changed: %q, want %q", summary(got), summary(liveBefore))
		}
		if len(f.renderKeys(scratch, renderA)) == 0 {
			t.Errorf("the scratch copy is gone")
		}
	})

	f.applyOps(scratch, ops[4])
	t.Run("a copy as far as the live keys is swapped in", func(t *testing.T) {
		need, err := f.store.SwapRender(ctx, f.gen, renderA)
		if err != nil || need != 0 {
			t.Fatalf("SwapRender = %d, %v; want 0 (swapped)", need, err)
		}
		got, l := f.mustList(projectA, renderA)
		want := []string{
			`s2 2026-06-05T10:01:00.000Z clicks=0 revoked=null/null msg=null token=cks_s2`,
			`s1 2026-06-05T10:00:00.000Z clicks=1 revoked=null/null msg=null token=cks_s1`,
		}
		if !slices.Equal(summary(got), want) {
			t.Errorf("live list %q, want the scratch copy's %q", summary(got), want)
		}
		if l.Seq != ops[4].Seq {
			t.Errorf("live seq %d, want %d", l.Seq, ops[4].Seq)
		}
		// The copy differs from what was live at the same list version
		// (its last event, the view, changed both): the repair must still
		// change the versions an ETag is made of.
		if l.Ver != live.Ver {
			t.Fatalf("the copy's list version %d, the live one's %d: the test wants them equal", l.Ver, live.Ver)
		}
		if l.Versions() == live.Versions() {
			t.Errorf("versions %+v unchanged by the repair", l.Versions())
		}
		if keys := f.scanKeys(genPattern(scratch)); len(keys) != 0 {
			t.Errorf("scratch keys left after the swap: %q", keys)
		}
		if got, _ := f.mustList(projectA, renderB); !slices.Equal(summary(got), summary(otherBefore)) {
			t.Errorf("another render changed: %q", summary(got))
		}
	})
	t.Run("the swapped keys keep their guards", func(t *testing.T) {
		if out := f.applyOps(f.gen, ops[4]); out[0] != Stale {
			t.Errorf("rerun of the copy's last op: %v, want stale", out[0])
		}
		if out := f.apply(eventstest.ShareViewed(projectA, renderA, "s1")); out[0] != Applied {
			t.Errorf("a new view: %v, want applied", out[0])
		}
		if got, _ := f.mustList(projectA, renderA); got[1].ClickCount != 2 {
			t.Errorf("s1 clickCount %d, want 2", got[1].ClickCount)
		}
	})
	t.Run("a copy ahead of the live keys is swapped in", func(t *testing.T) {
		more := f.op(eventstest.ShareViewed(projectA, renderA, "s1"), time.Time{})
		f.applyOps(scratch, append(slices.Clone(ops), more)...)
		need, err := f.store.SwapRender(ctx, f.gen, renderA)
		if err != nil || need != 0 {
			t.Fatalf("SwapRender = %d, %v; want 0 (swapped)", need, err)
		}
		got, l := f.mustList(projectA, renderA)
		if l.Seq != more.Seq || got[0].RevokedAt == nil || got[1].ClickCount != 2 {
			t.Errorf("seq %d list %q, want seq %d, s2 revoked and s1 with 2 clicks", l.Seq, summary(got), more.Seq)
		}
	})
}
