package projector_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/polltest"
)

// TestBurstOfLargeBadEvents publishes 500 malformed events of 600 KB (300
// MB in all, well under the server's 1 MiB max payload each) and then good
// events, and starts the projector on the backlog. Fetching is bounded in
// bytes, so the server never drops the projector's connection as a slow
// consumer, every bad event is dead-lettered and every good one applied
// within a minute, and the heap stays within a bound far below the
// backlog's size.
//
// Before the bound the projector asked for 1,024 messages at once (600
// MB): the server dropped it as a slow consumer (1 to 7 times in this
// test), it reconnected and asked again, and the heap grew by 700-900 MiB.
func TestBurstOfLargeBadEvents(t *testing.T) {
	e := newEnv(t) // not parallel: the heap is measured
	const (
		bad  = 500
		size = 600 << 10
		good = 200
	)

	var disconnects, asyncErrs atomic.Int64
	e.nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		if err != nil {
			disconnects.Add(1)
		}
	})
	e.nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs.Add(1) })

	project, render := eventstest.NewUUID(), eventstest.NewUUID()
	published := time.Now()
	body := append([]byte(`{"id":"big","pad":"`), bytes.Repeat([]byte("x"), size)...) // not even JSON
	firstBad := e.publishMsgs(t, bad, func(i int) *nats.Msg {
		m := nats.NewMsg(events.Subject(events.TypeShareViewed, render))
		m.Data = body
		m.Header.Set(jetstream.MsgIDHeader, "big-"+strconv.Itoa(i))
		return m
	})[0]
	evs := []eventstest.Event{eventstest.ShareCreated(project, render, "s1", "2026-06-05T10:00:00Z")}
	for range good {
		evs = append(evs, eventstest.ShareViewed(project, render, "s1"))
	}
	seqs := e.publishAsync(t, evs)
	last := seqs[len(seqs)-1]
	t.Logf("published in %v", time.Since(published).Round(time.Millisecond))

	peak := sampleMemory(t)
	start := time.Now()
	r := e.start(t)
	polltest.WaitFor(t, 60*time.Second, func() error {
		s, err := e.js.Stream(context.Background(), events.DeadLetterStream)
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n < bad {
			return fmt.Errorf("%d of %d bad events dead-lettered (%d disconnects, server slow consumers %d)",
				n, bad, disconnects.Load(), e.ns.NumSlowConsumers())
		}
		return nil
	})
	e.waitApplied(t, last, r)
	took := time.Since(start)
	m := peak()
	t.Logf("%d x %d KiB bad + %d good: done in %v; heap in use %.0f MiB before, at most %.0f MiB while projecting; RSS %.0f MiB before, at most %.0f MiB",
		bad, size>>10, good, took.Round(time.Millisecond), mib(m.heapBase), mib(m.heapPeak), mib(m.rssBase), mib(m.rssPeak))

	e.wantClicks(t, project, render, map[string]int{"s1": good})
	origins := deadLetterOrigins(t, e.js)
	for seq := firstBad; seq < firstBad+bad; seq++ {
		if n := origins[seq]; n != 1 {
			t.Errorf("bad event at seq %d dead-lettered %d times, want once", seq, n)
		}
	}
	if got := len(origins); got != bad {
		t.Errorf("dead letters of %d events, want %d", got, bad)
	}
	if n := e.ns.NumSlowConsumers(); n != 0 {
		t.Errorf("server counted %d slow consumers, want 0", n)
	}
	if n, m := disconnects.Load(), e.nc.Stats().Reconnects; n != 0 || m != 0 {
		t.Errorf("client disconnected %d times with an error and reconnected %d times, want 0", n, m)
	}
	if n := asyncErrs.Load(); n != 0 {
		t.Errorf("client reported %d asynchronous errors (slow consumer?), want 0", n)
	}
	// The projector holds at most 2 × MaxFetchBytes (8 MiB by default) of
	// events: one between the server and the loop, one of decoded events
	// waiting or being applied. The embedded server runs in this process:
	// it copies every message it receives or sends (the 300 MB read and
	// the 300 MB dead-lettered go through its buffers and block caches),
	// and GOGC=100 lets that garbage reach the live heap's size before a
	// collection. Growth measured 115-150 MiB (with 900 KB events too);
	// the unbounded fetch grew by 650-900 MiB.
	if grew := m.heapPeak - m.heapBase; grew > 256<<20 {
		t.Errorf("heap in use grew by %.0f MiB while projecting, want at most 256 MiB", mib(grew))
	}
}

// publishMsgs publishes the n messages msg makes, at most 32
// unacknowledged at a time, and returns their stream sequences.
func (e *env) publishMsgs(t testing.TB, n int, msg func(i int) *nats.Msg) []uint64 {
	t.Helper()
	const window = 32
	seqs := make([]uint64, 0, n)
	for start := 0; start < n; start += window {
		futs := make([]jetstream.PubAckFuture, 0, window)
		for i := start; i < min(start+window, n); i++ {
			f, err := e.js.PublishMsgAsync(msg(i))
			if err != nil {
				t.Fatalf("publish async: %v", err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case ack := <-f.Ok():
				seqs = append(seqs, ack.Sequence)
			case err := <-f.Err():
				t.Fatalf("publish %s: %v", f.Msg().Subject, err)
			case <-time.After(30 * time.Second):
				t.Fatal("publish not acknowledged after 30s")
			}
		}
	}
	return seqs
}

// memory is the heap in use and the resident set size before a phase and
// the highest of each sampled during it.
type memory struct{ heapBase, heapPeak, rssBase, rssPeak uint64 }

// sampleMemory collects garbage, reads the heap in use and the RSS as a
// baseline and samples both every 20ms until the returned function is
// called, which returns them.
func sampleMemory(t testing.TB) func() memory {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var (
		mu   sync.Mutex
		m    = memory{heapBase: ms.HeapInuse, heapPeak: ms.HeapInuse, rssBase: rss(), rssPeak: rss()}
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			r := rss()
			mu.Lock()
			m.heapPeak, m.rssPeak = max(m.heapPeak, ms.HeapInuse), max(m.rssPeak, r)
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop := func() memory {
		once.Do(func() { close(done); wg.Wait() })
		mu.Lock()
		defer mu.Unlock()
		return m
	}
	t.Cleanup(func() { stop() })
	return stop
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// rss is the process's resident set size in bytes as Linux reports it in
// /proc/self/status, or 0 elsewhere.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
