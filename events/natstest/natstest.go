// Package natstest runs an embedded NATS server with JetStream for tests,
// for `sharesd dev` and for the benchmark (Launch). Every test server
// listens on a random loopback port, never on 4222. Tests create the
// streams the way the projector does: natstest.Start(t, projector.EnsureStreams).
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events/polltest"
)

// Launch runs an embedded NATS server with JetStream on host:port
// (server.RANDOM_PORT, -1, picks a free one), storing its data under
// storeDir, and returns once it accepts connections. The caller shuts it
// down. StartServer is Launch for a test.
func Launch(host string, port int, storeDir string) (*server.Server, error) {
	s, err := server.NewServer(&server.Options{
		Host:      host,
		Port:      port,
		JetStream: true,
		StoreDir:  storeDir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("embedded nats: not ready after 10s")
	}
	return s, nil
}

// StartServer runs an embedded NATS server with JetStream on 127.0.0.1 and
// a random port, storing its data under storeDir (a new t.TempDir() when
// storeDir is ""). The server is shut down when the test ends.
func StartServer(t testing.TB, storeDir string) *server.Server {
	t.Helper()
	if storeDir == "" {
		storeDir = t.TempDir()
	}
	return run(t, server.RANDOM_PORT, storeDir)
}

// RestartServer shuts s down and starts a new server on the same port with
// the same store directory, so clients reconnect to it and the streams
// keep their messages. Use the returned server from then on.
func RestartServer(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatal("natstest: restart: server has no TCP listener")
	}
	// StoreDir reports <storeDir>/jetstream; the server adds that suffix
	// again to whatever it is given.
	storeDir := filepath.Dir(s.StoreDir())
	s.Shutdown()
	s.WaitForShutdown()
	return run(t, addr.Port, storeDir)
}

func run(t testing.TB, port int, storeDir string) *server.Server {
	t.Helper()
	s, err := Launch("127.0.0.1", port, storeDir)
	if err != nil {
		t.Fatalf("natstest: port %d: %v", port, err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect connects to s with a client that retries forever, so it
// survives RestartServer, and returns it with its JetStream handle (made
// with opts). The connection is closed when the test ends.
func Connect(t testing.TB, s *server.Server, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// Start runs a server with StartServer, connects to it with Connect and
// calls setup, which creates the streams: pass projector.EnsureStreams, so
// that tests use the streams the projector creates, not a copy of their
// configuration.
func Start(t testing.TB, setup func(context.Context, jetstream.JetStream) error) (*server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := StartServer(t, "")
	nc, js := Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := setup(ctx, js); err != nil {
		t.Fatalf("natstest: create streams: %v", err)
	}
	return s, nc, js
}

// Publish publishes data on subject and returns its stream sequence. A
// non-empty msgID is sent as the Nats-Msg-Id header, so the stream drops
// a duplicate within its window and returns the first copy's sequence.
// On a cluster a stream just created or moved to a new leader may have no
// responders on the connection's node for a moment: Publish tries again
// then (the message was not stored), for up to 10 s in all.
func Publish(t testing.TB, js jetstream.JetStream, subject string, data []byte, msgID string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	var seq uint64
	err := polltest.Poll(10*time.Second, func() error {
		ack, err := js.Publish(ctx, subject, data, opts...)
		switch {
		case errors.Is(err, jetstream.ErrNoStreamResponse) && ctx.Err() == nil:
			return err
		case err != nil:
			return polltest.Stop(err)
		}
		seq = ack.Sequence
		return nil
	})
	if err != nil {
		t.Fatalf("natstest: publish %s: %v", subject, err)
	}
	return seq
}
