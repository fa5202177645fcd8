package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/craftkit/sharesd/api"
	"github.com/craftkit/sharesd/events/eventstest"
)

// TestConcurrentReads reads from several goroutines with more keys than
// the key cache holds while views are applied: every answer is right for
// its key, and no reader sees a count go down. Run it with -race.
func TestConcurrentReads(t *testing.T) {
	t.Parallel()
	const readers, reads, views = 6, 30, 60
	w := newWorld(t)
	keys := make([]string, readers)
	evs := []eventstest.Event{eventstest.RenderCreated(projectA, renderA), eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z")}
	for i := range keys {
		keys[i] = fmt.Sprintf("ck_live_concurrent_reader_%d", i)
		if i%3 != 2 { // every third reader has a key that does not exist
			evs = append(evs, eventstest.APIKeyCreated(projectA, fmt.Sprintf("key_%d", i), keys[i], "live"))
		}
	}
	w.apply(evs...)
	srv := w.serve(api.Config{KeyCacheSize: 2})

	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want, last := http.StatusOK, int64(-1)
			if i%3 == 2 {
				want = http.StatusUnauthorized
			}
			for range reads {
				r, err := fetch(srv, http.MethodGet, sharesPath(renderA), nil, "Authorization: Bearer "+key)
				if err != nil {
					errs <- err
					return
				}
				if r.status != want {
					errs <- fmt.Errorf("reader %d: status %d, want %d", i, r.status, want)
					return
				}
				if want != http.StatusOK {
					continue
				}
				var body struct{ Shares []share }
				if err := json.Unmarshal(r.body, &body); err != nil || len(body.Shares) != 1 {
					errs <- fmt.Errorf("reader %d: %v in %s", i, err, r.body)
					return
				}
				n := body.Shares[0].ClickCount
				if n < last {
					errs <- fmt.Errorf("reader %d: clickCount went from %d to %d", i, last, n)
					return
				}
				last = n
			}
		}()
	}
	for range views {
		w.apply(eventstest.ShareViewed(projectA, renderA, "s1"))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := get(t, srv, renderA, keys[0]).shares(t)[0].ClickCount; got != views {
		t.Errorf("clickCount = %d, want %d", got, views)
	}
}
