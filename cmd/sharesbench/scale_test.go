package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestScaleCatchUp runs the scale phase's catch-up with two projectors on
// the cluster kits, on a small backlog, the first events of a workload:
// both projectors apply a share of it, together they receive the stream at
// least once, every
// partition's position is saved at the head, and the render of the last
// event (a share.created) has applied it.
func TestScaleCatchUp(t *testing.T) {
	t.Parallel()
	w, err := newWorkload(workloadConfig{Projects: 2, Renders: 40, Shares: 4500, Revoked: 0.1, Views: 500, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := launchScale(ctx, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.close)
	env.lease = 300 * time.Millisecond // shared within about 150 ms
	const n = 2000                     // the first -scale-events only: keys, renders, shares
	if _, err := env.publish(ctx, w, n, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got, want := env.lastSeq, uint64(n); got != want {
		t.Fatalf("stream's last sequence = %d, want %d", got, want)
	}

	r, err := env.catchUp(ctx, 2, 8, io.Discard) // small batches: the backlog outlasts the sharing
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fair share after %v, at the head after %v, applied per projector %v", r.spread, r.elapsed, r.applied)
	total := 0.0
	for i, a := range r.applied {
		if a == 0 {
			t.Errorf("projector %d applied nothing: the partitions were not shared", i)
		}
		total += a
	}
	if total < float64(n) {
		t.Errorf("the projectors applied %.0f events, want at least the %d published", total, n)
	}
	payload := 0
	var buf []byte
	for i := range n {
		_, _, data := w.Event(i, buf)
		payload, buf = payload+len(data), data[:0]
	}
	var in uint64
	for _, b := range r.inBytes {
		in += b
	}
	if in < uint64(payload) {
		t.Errorf("the projectors received %d bytes in all, want at least the stream's %d", in, payload)
	}
	if r.spread <= 0 || r.spread > r.elapsed || r.saved < r.elapsed {
		t.Errorf("fair share after %v, at the head after %v, saved after %v: want 0 < share ≤ head ≤ saved", r.spread, r.elapsed, r.saved)
	}

	kind, j := w.kindOf(n - 1)
	if kind != kindShare {
		t.Fatalf("event %d is of kind %d, want a share", n-1, kind)
	}
	rd := w.renders[w.shares[j].render]
	list, err := env.store.List(ctx, w.projects[rd.project], rd.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := list.Seq, uint64(n); got != want {
		t.Errorf("render of the last event applied up to %d, want %d", got, want)
	}
}
