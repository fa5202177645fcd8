package natstest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events/polltest"
)

// A Cluster is a JetStream cluster of embedded servers on loopback, each
// with its own store directory and fixed client and route ports, so a node
// shut down can come back as itself (Restart).
type Cluster struct {
	// URL lists every node's client URL, comma-separated: the form of
	// NATS_URL and of nats.Connect for a cluster.
	URL     string
	Servers []*server.Server // nil for a node that is down

	t    testing.TB // StartCluster's test; nil for LaunchCluster
	opts []*server.Options
}

// LaunchCluster runs a JetStream cluster of n embedded servers (n ≥ 1; 3
// for R3 streams) on free loopback ports, with routes between all of them,
// each storing under its own directory in dir, and returns once JetStream
// has a meta leader, every node is current and the leader sees every node
// online (see WaitReady). The caller stops it with Close. StartCluster is
// LaunchCluster for a test; the benchmark uses LaunchCluster. A launched cluster reports through its errors, not a
// test: WaitReady, Restart and WaitStreamLeader are for StartCluster's.
func LaunchCluster(n int, dir string) (*Cluster, error) {
	ports := make([]int, 2*n) // client ports, then route ports
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("natstest: free port: %w", err)
		}
		ports[i] = p
	}
	routes := make([]*url.URL, n)
	urls := make([]string, n)
	for i := range n {
		routes[i] = &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[n+i]))}
		urls[i] = "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))
	}
	c := &Cluster{URL: strings.Join(urls, ","), Servers: make([]*server.Server, n)}
	for i := range n {
		name := "n" + strconv.Itoa(i+1)
		c.opts = append(c.opts, &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   filepath.Join(dir, name),
			Cluster:    server.ClusterOpts{Name: "sharesd-test", Host: "127.0.0.1", Port: ports[n+i]},
			Routes:     routes,
			NoLog:      true,
			NoSigs:     true,
		})
	}
	for i := range n { // start them together: each waits for the others' routes
		s, err := server.NewServer(c.opts[i])
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("natstest: cluster node %d: %w", i+1, err)
		}
		c.Servers[i] = s
		go s.Start()
	}
	if err := c.ready(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// StartCluster runs a cluster with LaunchCluster in t.TempDir() and shuts
// its servers down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := LaunchCluster(n, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(c.Close)
	return c
}

// Close shuts every running node down and waits until they have stopped.
func (c *Cluster) Close() {
	for i := range c.Servers {
		c.Shutdown(i)
	}
}

// WaitReady waits until every running node accepts connections, JetStream
// has a meta leader, every node is current with it and it sees every
// running node online.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	if err := c.ready(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) ready() error {
	err := polltest.Poll(20*time.Second, func() error {
		var leader *server.Server
		running := 0
		for i, s := range c.Servers {
			if s == nil {
				continue
			}
			running++
			if !s.ReadyForConnections(10 * time.Millisecond) {
				return fmt.Errorf("node %d not accepting connections", i+1)
			}
			if !s.JetStreamIsCurrent() {
				return fmt.Errorf("node %d: jetstream not current", i+1)
			}
			if s.JetStreamIsLeader() {
				leader = s
			}
		}
		if leader == nil {
			return errors.New("no jetstream meta leader")
		}
		// Placing a replicated stream needs the leader to know its peers
		// online (with their stats), which it learns after it is elected:
		// "no suitable peers for placement" until then.
		if peers := leader.JetStreamClusterPeers(); len(peers) != running {
			return fmt.Errorf("the jetstream meta leader sees %d peers online %q, want %d", len(peers), peers, running)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("natstest: cluster: %w", err)
	}
	return nil
}

// Shutdown stops node i (from 0) and waits until it has stopped. The
// others elect new leaders for what it led.
func (c *Cluster) Shutdown(i int) {
	if s := c.Servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// Restart starts node i again, after Shutdown, on its ports with its store
// directory, and waits until the cluster is ready again.
func (c *Cluster) Restart(i int) *server.Server {
	c.t.Helper()
	c.Shutdown(i)
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		c.t.Fatalf("natstest: restart node %d: %v", i+1, err)
	}
	c.Servers[i] = s
	go s.Start()
	c.WaitReady()
	return s
}

// StreamLeader returns the index of the node that leads stream, or -1
// while it has none.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.Servers {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitStreamLeader waits until stream has a leader, which it has only
// some time after it was created or its leader stopped, and returns its
// index.
func (c *Cluster) WaitStreamLeader(stream string) int {
	c.t.Helper()
	leader := -1
	err := polltest.Poll(20*time.Second, func() error {
		if leader = c.StreamLeader(stream); leader < 0 {
			return fmt.Errorf("stream %s has no leader", stream)
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("natstest: %v", err)
	}
	return leader
}

// Connect connects to the cluster (every node's URL) with a client that
// retries forever, and returns it with its JetStream handle. The
// connection is closed when the test ends.
func (c *Cluster) Connect(t testing.TB, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect to cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// freePort returns a loopback TCP port that was free a moment ago (never
// 4222).
func freePort() (int, error) {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if port != 4222 {
			return port, nil
		}
	}
}
