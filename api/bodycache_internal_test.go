package api

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// TestBodyCacheBoundCoversHeap fills the cache, bounded at a few MiB, with
// many small bodies, as a server that answers many renders does, and checks
// that the heap grows by what the bound says (within 10%), at several
// bounds so that the map is caught at different loads. Counting only body
// bytes, as the cache once did, lets it hold four times its bound.
func TestBodyCacheBoundCoversHeap(t *testing.T) {
	// Not parallel: it measures the heap.
	for _, bound := range []int{2 << 20, 3 << 20, 5 << 20} {
		t.Run(fmt.Sprintf("%dMiB", bound>>20), func(t *testing.T) {
			body := bytes.Repeat([]byte("x"), 60)
			keys := make([]string, bound/len(body)) // about four times what fits
			for i := range keys {
				keys[i] = fmt.Sprintf("0b6c7c0e-8a1f-4c7e-9d2a-3e4f5a6b7c8d/00000000-0000-4000-8000-%012d", i)
			}
			before := heapAlloc()
			c := newBodyCache(bound)
			for i, k := range keys {
				b := cachedBody{v: readmodel.Versions{Ver: uint64(i), ProjectVer: 1}, seq: uint64(i), body: body}
				b.hdr = newHeaders(b, "abc123")
				c.put(k, b)
			}
			after := heapAlloc()
			runtime.KeepAlive(c)
			runtime.KeepAlive(keys)
			grew := int(after - before)
			if c.size > bound {
				t.Fatalf("counted %d bytes, over the bound %d", c.size, bound)
			}
			ratio := float64(grew) / float64(c.size)
			t.Logf("%d entries, counted %d B (%.0f B each), heap grew %d B: ratio %.3f", len(c.entries), c.size, float64(c.size)/float64(len(c.entries)), grew, ratio)
			if ratio < 0.9 || ratio > 1.1 {
				t.Errorf("the heap grew by %d bytes for %d counted (ratio %.2f), want within 10%%", grew, c.size, ratio)
			}
		})
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBodyCacheKeepsNewer checks that a body read earlier (a lower
// sequence or project version) and stored last does not replace a newer
// one read in the same epoch, so what memory serves never goes back; and
// that after an epoch change (a switch: sequences may start again) it does.
func TestBodyCacheKeepsNewer(t *testing.T) {
	t.Parallel()
	c := newBodyCache(1 << 20)
	live := stamp{state: 3}
	put := func(seq, pver uint64, st stamp, body string) {
		c.put("p/r", cachedBody{v: readmodel.Versions{Ver: seq, ProjectVer: pver}, seq: seq, stamp: st, body: []byte(body)})
	}
	steps := []struct {
		seq, pver uint64
		st        stamp
		body      string
		want      string
	}{
		{5, 1, live, "five", "five"},
		{4, 1, live, "four", "five"},
		{5, 0, live, "five, older base", "five"},
		{5, 2, live, "five, newer base", "five, newer base"},
		{6, 2, live, "six", "six"},
		{2, 0, stamp{state: 5}, "two, next epoch", "two, next epoch"},
	}
	for _, s := range steps {
		put(s.seq, s.pver, s.st, s.body)
		if got, _ := c.get("p/r"); string(got.body) != s.want {
			t.Errorf("after putting %q: kept %q, want %q", s.body, got.body, s.want)
		}
	}
}
