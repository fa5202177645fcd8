package api_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
)

// TestMemoryReadProperty runs random interleavings of batches of events
// and reads on two API servers following one Redis, while background
// readers keep both servers' kept bodies churning. Every read must equal
// the reference model at some position at or after both the position of
// the server's previous read of that render and the last position the
// test waited for that server to hear; a read with ?minSeq at the stream's
// end must equal the model at the end. A 304 stands for the body of the
// ETag it confirms. Background readers check that a share's clickCount
// never goes down within one process.
func TestMemoryReadProperty(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runMemoryProperty(t, seed, 250)
		})
	}
}

// propRead is what one server last answered for one render.
type propRead struct {
	pos  int    // the model position it was found equal to
	etag string // its ETag, for If-None-Match
}

type memoryProperty struct {
	t       *testing.T
	w       *modelWorld
	rng     *rand.Rand
	servers []*follower
	renders []string
	history []map[string][]share // the model's lists after each batch
	heard   []int                // per server: the position it was last waited for
	last    []map[string]propRead
}

func runMemoryProperty(t *testing.T, seed uint64, steps int) {
	w := newModelWorld(t)
	w.apply(eventstest.APIKeyCreated(projectA, "key_live", liveKey, "live"),
		eventstest.RenderCreated(projectA, renderA), eventstest.RenderCreated(projectA, renderB))
	p := &memoryProperty{t: t, w: w, rng: rand.New(rand.NewPCG(seed, 77)), renders: []string{renderA, renderB}}
	for range 2 {
		p.servers = append(p.servers, w.follow(api.Config{}))
		p.heard = append(p.heard, 0)
		p.last = append(p.last, map[string]propRead{})
	}
	p.snapshot()
	stop := p.background()
	defer stop()
	for step := range steps {
		switch x := p.rng.IntN(10); {
		case x < 4:
			p.applyBatch()
		case x < 5:
			s := p.rng.IntN(len(p.servers))
			if p.heard[s] < len(p.history)-1 { // else its report was taken already
				p.servers[s].waitPos(t, w.seq)
				p.heard[s] = len(p.history) - 1
			}
		default:
			p.read(step)
		}
	}
}

// snapshot records the model's lists at the current position.
func (p *memoryProperty) snapshot() {
	lists := map[string][]share{}
	for _, r := range p.renders {
		lists[r] = p.w.want(r)
	}
	p.history = append(p.history, lists)
}

// applyBatch applies 1 to 3 random events in one batch.
func (p *memoryProperty) applyBatch() {
	evs := make([]eventstest.Event, 1+p.rng.IntN(3))
	for i := range evs {
		r, s := p.renders[p.rng.IntN(len(p.renders))], "s"+strconv.Itoa(p.rng.IntN(4))
		switch x := p.rng.IntN(20); {
		case x < 4:
			evs[i] = eventstest.ShareCreated(projectA, r, s, fmt.Sprintf("2026-06-05T10:%02d:00Z", p.rng.IntN(60)))
		case x < 14:
			evs[i] = eventstest.ShareViewed(projectA, r, s)
		case x < 16:
			evs[i] = eventstest.ShareRevoked(projectA, r, s, "2026-06-05T12:00:00Z", nil)
		case x < 19:
			evs[i] = eventstest.ProjectUpdated(projectA, fmt.Sprintf("https://s%d.example", p.rng.IntN(3)))
		default:
			if p.rng.IntN(5) == 0 {
				evs[i] = eventstest.RenderDeleted(projectA, r)
			} else {
				evs[i] = eventstest.ShareViewed(projectA, r, s)
			}
		}
	}
	p.w.apply(evs...)
	p.snapshot()
}

// read reads a random render on a random server, sometimes with the
// ETag it last answered, sometimes with ?minSeq at the stream's end, and
// checks the answer against the history.
func (p *memoryProperty) read(step int) {
	t := p.t
	s, r := p.rng.IntN(len(p.servers)), p.renders[p.rng.IntN(len(p.renders))]
	prev, seen := p.last[s][r]
	lowest := max(prev.pos, p.heard[s])
	path, header := sharesPath(r), []string{"Authorization: Bearer " + liveKey}
	if p.rng.IntN(4) == 0 {
		path += "?minSeq=" + strconv.FormatUint(p.w.seq, 10)
		lowest = len(p.history) - 1
	}
	if seen && prev.etag != "" && p.rng.IntN(3) == 0 {
		header = append(header, "If-None-Match: "+prev.etag)
	}
	rep := request(t, p.servers[s].srv, http.MethodGet, path, nil, header...)
	var got []share
	switch rep.status {
	case http.StatusOK:
		got = rep.shares(t)
	case http.StatusNotModified:
		got = p.history[prev.pos][r]
	case http.StatusNotFound:
	default:
		t.Fatalf("step %d, server %d, render %s: status %d; body %s", step, s, r, rep.status, rep.body)
	}
	for k := lowest; k < len(p.history); k++ {
		if reflect.DeepEqual(p.history[k][r], got) {
			p.last[s][r] = propRead{pos: k, etag: rep.header.Get("ETag")}
			return
		}
	}
	t.Fatalf("step %d, server %d, render %s (path %s): answer %+v equals the model at no position in [%d, %d]; at %d the model has %+v",
		step, s, r, path, got, lowest, len(p.history)-1, len(p.history)-1, p.history[len(p.history)-1][r])
}

// background runs, per server, a reader of each render until stopped,
// checking that no share's clickCount goes down in what that server
// answers.
func (p *memoryProperty) background() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for s, f := range p.servers {
		for _, r := range p.renders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := readUntil(done, f, r); err != nil {
					p.t.Errorf("server %d: %v", s, err)
				}
			}()
		}
	}
	return func() { close(done); wg.Wait() }
}

// readUntil reads render on f until done is closed, and fails if a share's
// clickCount is lower than one f answered before.
func readUntil(done <-chan struct{}, f *follower, render string) error {
	highest := map[string]int64{}
	for {
		select {
		case <-done:
			return nil
		default:
		}
		rep, err := fetch(f.srv, http.MethodGet, sharesPath(render), nil, "Authorization: Bearer "+liveKey)
		if err != nil {
			return err
		}
		switch rep.status {
		case http.StatusNotFound:
			continue
		case http.StatusOK:
		default:
			return fmt.Errorf("status %d; body %s", rep.status, rep.body)
		}
		var body struct{ Shares []share }
		if err := json.Unmarshal(rep.body, &body); err != nil {
			return err
		}
		for _, sh := range body.Shares {
			if sh.ClickCount < highest[sh.ID] {
				return fmt.Errorf("render %s, share %s: clickCount %d after %d", render, sh.ID, sh.ClickCount, highest[sh.ID])
			}
			highest[sh.ID] = sh.ClickCount
		}
	}
}
