package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// defaultBase is the share base the tests render lists with.
const defaultBase = "https://www.craftkit.dev"

// env is one test's servers: an embedded JetStream, a redis-server and a
// read-model store on it.
type env struct {
	ns    *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	redis *redistest.Server
	rdb   *redis.Client
	store *readmodel.Store
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ns, nc, js := natstest.Start(t, projector.EnsureStreams)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	return &env{ns: ns, nc: nc, js: js, redis: srv, rdb: rdb, store: readmodel.New(rdb, 24*time.Hour)}
}

// running is a projector running in its own goroutine.
type running struct {
	p      *projector.Projector
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// start runs a projector on e until the test ends (or stop is called).
func (e *env) start(t testing.TB) *running {
	t.Helper()
	return e.startWith(t, projector.Config{})
}

func (e *env) startWith(t testing.TB, cfg projector.Config) *running {
	t.Helper()
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = time.Second
	}
	if cfg.DropGrace == 0 {
		cfg.DropGrace = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 500 * time.Millisecond
	}
	reg := prometheus.NewRegistry()
	p := projector.New(e.js, e.store, testLogger(t), projector.NewMetrics(reg), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the projector and waits for Run to return, at most 10s (the
// SIGTERM budget). It returns how long that took. Calling it again is a
// no-op.
func (r *running) stop(t testing.TB) time.Duration {
	t.Helper()
	if r.done == nil {
		return 0
	}
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
	r.done = nil
	return time.Since(start)
}

// waitApplied waits until the active generation holds every event up to
// stream sequence seq: its saved position, or the position a projector
// reports having written to it, has reached seq.
func (e *env) waitApplied(t testing.TB, seq uint64, ps ...*running) {
	t.Helper()
	polltest.WaitFor(t, 20*time.Second, func() error {
		ctl, err := e.store.ReadControl(context.Background())
		if err != nil {
			return err
		}
		if ctl.Active == "" {
			return errors.New("no active generation")
		}
		if ctl.Pos[ctl.Active] >= seq {
			return nil
		}
		for _, r := range ps {
			if st := r.p.Status(); st.Gen == ctl.Active && !st.Rebuilding && st.Applied >= seq {
				return nil
			}
		}
		return fmt.Errorf("active generation %s saved at %d, want %d", ctl.Active, ctl.Pos[ctl.Active], seq)
	})
}

// lastSeq is the CRAFTKIT stream's last sequence.
func (e *env) lastSeq(t testing.TB) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), events.Stream)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return s.CachedInfo().State.LastSeq
}

// publish publishes ev with Nats-Msg-Id set to its id and returns its stream
// sequence.
func (e *env) publish(t testing.TB, evs ...eventstest.Event) uint64 {
	t.Helper()
	var seq uint64
	for _, ev := range evs {
		seq = natstest.Publish(t, e.js, ev.Subject(), ev.Body(), ev.ID)
	}
	return seq
}

// publishAsync publishes evs without waiting for each ack, then waits for
// all of them and returns their stream sequences. It keeps at most 1,000
// unacknowledged, well below the client's limit, past which a publish
// fails instead of waiting.
func (e *env) publishAsync(t testing.TB, evs []eventstest.Event) []uint64 {
	t.Helper()
	const window = 1000
	seqs := make([]uint64, 0, len(evs))
	timeout := time.After(60 * time.Second)
	for start := 0; start < len(evs); start += window {
		chunk := evs[start:min(start+window, len(evs))]
		futs := make([]jetstream.PubAckFuture, len(chunk))
		for i, ev := range chunk {
			msg := nats.NewMsg(ev.Subject())
			msg.Data = ev.Body()
			msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
			f, err := e.js.PublishMsgAsync(msg)
			if err != nil {
				t.Fatalf("publish async: %v", err)
			}
			futs[i] = f
		}
		for i, f := range futs {
			select {
			case ack := <-f.Ok():
				seqs = append(seqs, ack.Sequence)
			case err := <-f.Err():
				t.Fatalf("publish async %s: %v", chunk[i].Subject(), err)
			case <-timeout:
				t.Fatal("async publishes not acknowledged after 60s")
			}
		}
	}
	return seqs
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // a test bug: the tests marshal maps of plain values
	}
	return b
}

// testLogger discards the projector's logs, or writes them to the test's
// output when SHARESD_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SHARESD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
