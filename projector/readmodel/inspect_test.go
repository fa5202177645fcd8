package readmodel

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/eventstest"
)

func TestRenderKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	ctx := context.Background()
	names := func(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

	if got := f.renderKeys(f.gen, renderA); len(got) != 0 {
		t.Fatalf("keys of an unknown render = %v, want none", got)
	}
	f.apply(eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"),
		eventstest.ShareViewed(projectA, renderA, "s1"), eventstest.ShareRevoked(projectA, renderA, "s1", "2026-06-05T11:00:00Z", nil),
		eventstest.ShareViewed(projectA, renderA, "s2")) // a view before its share: kept in clicks
	got := f.renderKeys(f.gen, renderA)
	if want := []string{"clicks", "dedupe", "recs", "render", "revoked"}; !slices.Equal(names(got), want) {
		t.Fatalf("keys of a render = %v, want %v", names(got), want)
	}
	keys := renderKeysOf(f.gen, renderA)
	if got["render"] != keys[kRender] || got["clicks"] != keys[kClicks] {
		t.Errorf("render %q clicks %q, want %q %q", got["render"], got["clicks"], keys[kRender], keys[kClicks])
	}
	if other := f.renderKeys(NewGen(time.Now().Add(time.Hour)), renderA); len(other) != 0 {
		t.Errorf("keys in another generation = %v, want none", other)
	}

	f.apply(eventstest.RenderDeleted(projectA, renderA))
	if got := names(f.renderKeys(f.gen, renderA)); !slices.Equal(got, []string{"render"}) {
		t.Errorf("keys of a deleted render = %v, want only its render hash", got)
	}
	if _, err := f.store.RenderKeys(ctx, "g*", renderA); err == nil {
		t.Error("RenderKeys of a pattern: no error, want one")
	}
}

// TestRewind checks that Rewind lowers a position that SetPos only raises,
// and that it touches no other generation.
func TestRewind(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	ctx := context.Background()
	const other = "gother"
	for gen, pos := range map[string]uint64{f.gen: 10, other: 7} {
		if err := f.store.SetPos(ctx, gen, pos); err != nil {
			t.Fatal(err)
		}
	}
	pos := func() (uint64, uint64) {
		t.Helper()
		ctl, err := f.store.ReadControl(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ctl.Pos[f.gen], ctl.Pos[other]
	}
	if err := f.store.SetPos(ctx, f.gen, 3); err != nil {
		t.Fatal(err)
	}
	if got, _ := pos(); got != 10 {
		t.Fatalf("SetPos lower: position %d, want 10 kept", got)
	}
	if err := f.store.Rewind(ctx, f.gen, 3); err != nil {
		t.Fatal(err)
	}
	if got, kept := pos(); got != 3 || kept != 7 {
		t.Fatalf("after Rewind to 3: positions %d and %d, want 3 and the other's 7", got, kept)
	}
}

// TestAddViews: views added behind the projector's back show in the list,
// before and after the share's next view, whether it is created before or
// after they are added.
func TestAddViews(t *testing.T) {
	t.Parallel()
	f := newFixture(t, time.Hour)
	ctx := context.Background()
	if err := f.store.AddViews(ctx, f.gen, renderA, "s2", 4); err != nil { // before s2 exists
		t.Fatal(err)
	}
	f.apply(eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"), eventstest.ShareViewed(projectA, renderA, "s1"),
		eventstest.ShareCreated(projectA, renderA, "s2", "2026-06-05T09:00:00Z"))
	for _, step := range []struct {
		add, want int64 // views added by hand to s1 before one more view, its clickCount after it
	}{{-3, -1}, {5, 5}} {
		if err := f.store.AddViews(ctx, f.gen, renderA, "s1", step.add); err != nil {
			t.Fatal(err)
		}
		f.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
		list, _ := f.mustList(projectA, renderA)
		if list[0].ClickCount != step.want || list[1].ClickCount != 4 {
			t.Fatalf("clickCounts after AddViews(%d) and a view = %d %d, want %d 4", step.add, list[0].ClickCount, list[1].ClickCount, step.want)
		}
	}
	if err := f.store.AddViews(ctx, "g*", renderA, "s1", 1); err == nil {
		t.Error("AddViews in a pattern: no error, want one")
	}
}
