package natstest_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
)

func TestStart(t *testing.T) {
	t.Parallel()
	s, nc, js := natstest.Start(t, projector.EnsureStreams)

	if got, want := nc.ConnectedUrl(), s.ClientURL(); got != want {
		t.Fatalf("connected url = %q, want %q", got, want)
	}
	if port := s.Addr().(*net.TCPAddr).Port; port == 4222 {
		t.Fatalf("server port = %d, want a random port", port)
	}
	// The streams are the projector's own (projector.EnsureStreams), not a
	// copy of their configuration.
	for _, want := range []jetstream.StreamConfig{projector.StreamConfig(), projector.DeadLetterConfig()} {
		name := want.Name
		info := streamInfo(t, js, name)
		if got := info.Config.Subjects; len(got) != 1 || got[0] != want.Subjects[0] {
			t.Fatalf("%s: subjects = %v, want %v", name, got, want.Subjects)
		}
		if got, want := info.Config.Storage, want.Storage; got != want {
			t.Fatalf("%s: storage = %v, want %v", name, got, want)
		}
		if got, want := info.Config.Retention, want.Retention; got != want {
			t.Fatalf("%s: retention = %v, want %v", name, got, want)
		}
		if got, want := info.Config.Duplicates, want.Duplicates; want != 0 && got != want {
			t.Fatalf("%s: duplicate window = %v, want %v", name, got, want)
		}
	}
	if _, err := js.KeyValue(t.Context(), projector.DeadLetterBucket); err != nil {
		t.Fatalf("dead-letter bucket: %v", err)
	}
}

// TestLaunch starts a server as `sharesd dev` and the benchmark do, with
// no test to clean up after it: the caller shuts it down.
func TestLaunch(t *testing.T) {
	t.Parallel()
	s, err := natstest.Launch("127.0.0.1", -1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	if port := s.Addr().(*net.TCPAddr).Port; port == 4222 || port <= 0 {
		t.Fatalf("server port = %d, want a random port", port)
	}
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream is off, want on")
	}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t, projector.EnsureStreams)

	t.Run("sequences increase", func(t *testing.T) {
		var last uint64
		for i := range 3 {
			seq := natstest.Publish(t, js, "craftkit.share.viewed.r1", []byte("{}"), fmt.Sprintf("seq-%d", i))
			if seq <= last {
				t.Fatalf("publish %d: seq = %d, want > %d", i, seq, last)
			}
			last = seq
		}
	})

	t.Run("duplicate msg id is dropped", func(t *testing.T) {
		before := streamInfo(t, js, events.Stream).State.Msgs
		first := natstest.Publish(t, js, "craftkit.share.viewed.r1", []byte("{}"), "dup-1")
		again := natstest.Publish(t, js, "craftkit.share.viewed.r1", []byte("{}"), "dup-1")
		if again != first {
			t.Fatalf("duplicate seq = %d, want first copy's %d", again, first)
		}
		if got, want := streamInfo(t, js, events.Stream).State.Msgs, before+1; got != want {
			t.Fatalf("stream msgs = %d, want %d", got, want)
		}
	})

	t.Run("no msg id is never deduplicated", func(t *testing.T) {
		a := natstest.Publish(t, js, "craftkit.share.viewed.r1", []byte("{}"), "")
		b := natstest.Publish(t, js, "craftkit.share.viewed.r1", []byte("{}"), "")
		if b <= a {
			t.Fatalf("second seq = %d, want > %d", b, a)
		}
	})
}

func TestRestartServer(t *testing.T) {
	t.Parallel()
	s, nc, js := natstest.Start(t, projector.EnsureStreams)
	for i := range 3 {
		natstest.Publish(t, js, "craftkit.render.created.r1", []byte("{}"), fmt.Sprintf("m-%d", i))
	}
	url := s.ClientURL()

	s = natstest.RestartServer(t, s)

	if got, want := s.ClientURL(), url; got != want {
		t.Fatalf("client url after restart = %q, want %q", got, want)
	}
	polltest.WaitFor(t, 10*time.Second, func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("client not reconnected: %v", nc.Status())
		}
		return nil
	})
	if got, want := streamInfo(t, js, events.Stream).State.Msgs, uint64(3); got != want {
		t.Fatalf("stream msgs after restart = %d, want %d", got, want)
	}
	if got, want := natstest.Publish(t, js, "craftkit.render.created.r1", []byte("{}"), "m-3"), uint64(4); got != want {
		t.Fatalf("seq after restart = %d, want %d", got, want)
	}
	// The duplicate window survives the restart too.
	if got, want := natstest.Publish(t, js, "craftkit.render.created.r1", []byte("{}"), "m-0"), uint64(1); got != want {
		t.Fatalf("duplicate seq after restart = %d, want %d", got, want)
	}
}

func streamInfo(t testing.TB, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	polltest.WaitFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		info, err = st.Info(ctx)
		return err
	})
	return info
}
