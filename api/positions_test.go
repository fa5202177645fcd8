package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// reached reports, without waiting, whether partition part is at n.
func reached(p *api.Positions, part int, n uint64) bool {
	return p.Wait(context.Background(), part, n, 0)
}

// TestFollowMovesPartitions checks how Server.Follow moves the positions
// of a deployment of 4 partitions: an announcement with partitions moves
// only those (and ignores partitions the deployment does not have), one
// without moves all, and the saved position read at a (re)subscription,
// the lowest of all partitions', moves all without lowering any.
func TestFollowMovesPartitions(t *testing.T) {
	t.Parallel()
	p := api.NewPositions()
	srv := api.NewServer(slog.New(slog.DiscardHandler), nil, p, nil, api.Config{Partitions: 4})
	steps := []struct {
		report readmodel.AppliedPos
		want   [4]uint64
	}{
		{readmodel.AppliedPos{Seq: 10}, [4]uint64{10, 10, 10, 10}},
		{readmodel.AppliedPos{Seq: 20, Announced: true, Parts: []int{1, 3, 9}}, [4]uint64{10, 20, 10, 20}},
		{readmodel.AppliedPos{Lost: true}, [4]uint64{10, 20, 10, 20}},
		{readmodel.AppliedPos{Seq: 15}, [4]uint64{15, 20, 15, 20}},
		{readmodel.AppliedPos{Seq: 18, Announced: true, Parts: []int{1}}, [4]uint64{15, 20, 15, 20}},
		{readmodel.AppliedPos{Seq: 25, Announced: true, Parts: []int{}}, [4]uint64{15, 20, 15, 20}},
		{readmodel.AppliedPos{Seq: 30, Announced: true}, [4]uint64{30, 30, 30, 30}},
	}
	for i, s := range steps {
		srv.Follow(s.report)
		for part, want := range s.want {
			if !reached(p, part, want) || reached(p, part, want+1) {
				t.Fatalf("step %d (%+v): partition %d not at %d", i, s.report, part, want)
			}
		}
	}
}

// TestMinSeqWaitsForItsPartition checks that ?minSeq waits for the
// render's own partition: an announcement of another partition leaves the
// request waiting, one of the render's partition answers it with the data.
func TestMinSeqWaitsForItsPartition(t *testing.T) {
	t.Parallel()
	const parts = 4
	w := newWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_a", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	own := events.PartitionOf(renderA, parts)
	other := (own + 1) % parts
	positions := api.NewPositions()
	listed := make(chan uint64, 4)
	h := api.NewServer(slog.New(slog.DiscardHandler), &notifyingStore{Store: w.apiStore(), listed: listed}, positions, nil,
		api.Config{Env: "live", ShareBase: defaultBase, MinSeqWait: 10 * time.Second, Partitions: parts})
	h.Follow(readmodel.AppliedPos{Seq: w.seq})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	want := w.seq + 1
	done := make(chan reply, 1)
	go func() {
		r, err := fetch(srv, http.MethodGet, sharesPath(renderA)+"?minSeq="+strconv.FormatUint(want, 10), nil, "Authorization: Bearer "+liveKey)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	<-listed // read below minSeq: now it waits
	// Another partition at minSeq: a request woken by it would read the
	// render before the view below and answer no view.
	h.Follow(readmodel.AppliedPos{Seq: want, Announced: true, Parts: []int{other}})
	if reached(positions, own, want) {
		t.Fatalf("partition %d reached %d by another partition's announcement", own, want)
	}
	w.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
	h.Follow(readmodel.AppliedPos{Seq: want, Announced: true, Parts: []int{own}})
	r := <-done
	if got := <-listed; got != want {
		t.Errorf("second read at seq %d, want %d", got, want)
	}
	if s := r.shares(t); len(s) != 1 || s[0].ClickCount != 1 {
		t.Errorf("shares %+v, want s1 with the new view counted", s)
	}
}
