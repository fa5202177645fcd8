package events

import (
	"hash/fnv"
	"strings"
	"testing"
)

func TestPartition(t *testing.T) {
	const render = "0b5c6f1e-3d2a-4c8b-9e7f-1a2b3c4d5e6f"
	want := PartitionOf(render, 8)
	for _, subj := range []string{
		Subject(TypeRenderCreated, render),
		Subject(TypeShareViewed, render),
		Subject(TypeShareCreated, strings.ToUpper(render)),
	} {
		if got := Partition(subj, 8); got != want {
			t.Errorf("Partition(%q) = %d, want %d (the render's)", subj, got, want)
		}
	}
	h := fnv.New32a()
	h.Write([]byte(render))
	if got := PartitionOf(strings.ToUpper(render), 1000); got != int(h.Sum32()%1000) {
		t.Errorf("PartitionOf is not FNV-1a of the lowercase id: %d", got)
	}
	for _, subj := range []string{"", "craftkit", "craftkit.share", "craftkit.share.viewed", "other.share.viewed.x"} {
		if got := Partition(subj, 8); got != 0 {
			t.Errorf("Partition(%q) = %d, want 0", subj, got)
		}
	}
	if got := Partition(Subject(TypeShareViewed, "x.y"), 8); got != PartitionOf("x.y", 8) {
		t.Errorf("an entity with a dot: %d", got)
	}
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		seen[PartitionOf(strings.Repeat("a", i), 8)] = true
	}
	if len(seen) != 8 {
		t.Errorf("200 ids fell in %d of 8 partitions", len(seen))
	}
}
