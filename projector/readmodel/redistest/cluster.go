package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events/polltest"
)

// ErrNoCLI is returned when redis-cli, which creates a cluster, is not on
// PATH. Its message says how to install it.
var ErrNoCLI = errors.New("redis-cli not found on PATH: install it: " +
	"apt-get install -y redis-tools (or run make deps)")

// A Cluster is a Redis Cluster of redis-server child processes on loopback:
// three masters with one replica each, persistence off, a node timeout of
// one second (so a replica takes over about two seconds after its master
// dies).
type Cluster struct {
	// URL is the seed nodes in go-redis's cluster URL form,
	// redis://h1:p1?addr=h2:p2&addr=h3:p3: REDIS_URL with REDIS_CLUSTER=true.
	URL   string
	Nodes []*Server // every node, masters first as created

	t   testing.TB // StartCluster's test; nil for LaunchCluster
	ids []string   // each node's cluster id
}

// clusterArgs are the arguments of a cluster node. Its bus port is given,
// not redis-server's default of port+10000, which may be above 65535.
func clusterArgs(busPort int) []string {
	return []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "1000",
		"--cluster-port", strconv.Itoa(busPort),
		"--repl-diskless-sync-delay", "0", // a replica syncs at once, not after 5s
	}
}

// LaunchCluster runs six redis-server processes with --cluster-enabled,
// each with its files under its own directory in dir, joins them with
// `redis-cli --cluster create … --cluster-replicas 1` and returns once every
// node answers cluster_state:ok with all 16384 slots covered and every
// replica is in sync with its master. The caller kills the nodes with Stop.
// StartCluster is LaunchCluster for a test; the benchmark uses
// LaunchCluster. A launched cluster reports through its errors, not a
// test: the methods that take no testing.TB are for StartCluster's.
func LaunchCluster(dir string) (*Cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, ErrNoCLI
	}
	c := &Cluster{}
	addrs := make([]string, 6)
	for i := range addrs {
		s, err := launchNode(filepath.Join(dir, "node"+strconv.Itoa(i+1)))
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes, addrs[i] = append(c.Nodes, s), s.Addr
	}
	if err := c.create(cli, addrs); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.waitHealthy(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// launchNode runs one cluster node under dir on free ports.
func launchNode(dir string) (*Server, error) {
	bus, err := freePort()
	if err != nil {
		return nil, err
	}
	return Launch(dir, clusterArgs(bus)...)
}

// create joins the nodes at addrs into a cluster with redis-cli, then
// records the seed URL and each node's cluster id.
func (c *Cluster) create(cli string, addrs []string) error {
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command(cli, append(args, "--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redistest: redis-cli --cluster create: %w\n%s", err, out)
	}
	c.URL = "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	for _, s := range c.Nodes {
		id, err := query(s.Addr, func(ctx context.Context, r *redis.Client) (string, error) {
			return r.ClusterMyID(ctx).Result()
		})
		if err != nil {
			return fmt.Errorf("redistest: cluster myid of %s: %w", s.Addr, err)
		}
		c.ids = append(c.ids, id)
	}
	return nil
}

// StartCluster runs a cluster with LaunchCluster in t.TempDir() and kills
// its nodes when the test ends, showing their output if the test failed.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := LaunchCluster(t.TempDir())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	c.t = t
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, s := range c.Nodes {
				t.Logf("redistest: redis-server on %s output:\n%s", s.Addr, s.out)
			}
		}
	})
	return c
}

// Stop kills every node and waits for them to exit.
func (c *Cluster) Stop() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}

// Client returns a cluster client seeded with every node, closed when the
// test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	opt, err := redis.ParseClusterURL(c.URL)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	rdb := redis.NewClusterClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// WaitHealthy waits until every running node reports cluster_state:ok with
// every slot served, sees the nodes that are down as failed, and every
// replica's link to its master is up (so WAIT can be answered).
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	if err := c.waitHealthy(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) waitHealthy() error {
	err := polltest.Poll(30*time.Second, func() error {
		for i := range c.Nodes {
			if !c.up(i) {
				continue
			}
			if err := c.healthy(i); err != nil {
				return fmt.Errorf("node %d (%s): %w", i, c.Nodes[i].Addr, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redistest: cluster: %w", err)
	}
	return nil
}

func (c *Cluster) healthy(i int) error {
	_, err := query(c.Nodes[i].Addr, func(ctx context.Context, r *redis.Client) (string, error) {
		info, err := r.ClusterInfo(ctx).Result()
		if err != nil {
			return "", err
		}
		for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:6"} {
			if !strings.Contains(info, want+"\r\n") {
				return "", fmt.Errorf("cluster info lacks %s", want)
			}
		}
		nodes, err := r.ClusterNodes(ctx).Result()
		if err != nil {
			return "", err
		}
		for j, id := range c.ids {
			if !c.up(j) && !hasFlag(nodeLine(nodes, id), "fail") {
				return "", fmt.Errorf("node %d not seen as failed yet", j)
			}
		}
		repl, err := r.Info(ctx, "replication").Result()
		if err != nil {
			return "", err
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return "", errors.New("replica not in sync with its master")
		}
		return "", nil
	})
	return err
}

func (c *Cluster) up(i int) bool {
	select {
	case <-c.Nodes[i].exited:
		return false
	default:
		return true
	}
}

// nodeLine is the line of CLUSTER NODES that describes node id.
func nodeLine(nodes, id string) string {
	for _, l := range strings.Split(nodes, "\n") {
		if strings.HasPrefix(l, id+" ") {
			return l
		}
	}
	return ""
}

// hasFlag reports whether a CLUSTER NODES line has flag ("fail" is not
// "fail?", a failure not agreed yet).
func hasFlag(line, flag string) bool {
	f := strings.Fields(line)
	if len(f) < 3 {
		return false
	}
	for _, g := range strings.Split(f[2], ",") {
		if g == flag {
			return true
		}
	}
	return false
}

// Role returns "master" or "slave" for node i, as it reports itself.
func (c *Cluster) Role(i int) string {
	c.t.Helper()
	role, err := query(c.Nodes[i].Addr, func(ctx context.Context, r *redis.Client) (string, error) {
		v, err := r.Do(ctx, "ROLE").Slice()
		if err != nil || len(v) == 0 {
			return "", err
		}
		s, _ := v[0].(string)
		return s, nil
	})
	if err != nil {
		c.t.Fatalf("redistest: role of node %d: %v", i, err)
	}
	return role
}

// MasterOf returns the index of the node that serves key's slot as master,
// as node from sees it.
func (c *Cluster) MasterOf(key string) int {
	c.t.Helper()
	for i := range c.Nodes {
		if !c.up(i) {
			continue
		}
		addr, err := query(c.Nodes[i].Addr, func(ctx context.Context, r *redis.Client) (string, error) {
			slot, err := r.ClusterKeySlot(ctx, key).Result()
			if err != nil {
				return "", err
			}
			slots, err := r.ClusterSlots(ctx).Result()
			if err != nil {
				return "", err
			}
			for _, s := range slots {
				if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
					return s.Nodes[0].Addr, nil
				}
			}
			return "", fmt.Errorf("slot %d not served", slot)
		})
		if err != nil {
			c.t.Fatalf("redistest: master of %q: %v", key, err)
		}
		for j, s := range c.Nodes {
			if s.Addr == addr {
				return j
			}
		}
		c.t.Fatalf("redistest: master of %q is %s, not a node of the cluster", key, addr)
	}
	c.t.Fatal("redistest: no node is up")
	return -1
}

// KillMaster kills node i, a master, with SIGKILL, waits until its replica
// has taken over and the cluster is healthy again, and returns the index of
// that replica. The node stays down until Restart.
func (c *Cluster) KillMaster(i int) int {
	c.t.Helper()
	if got := c.Role(i); got != "master" {
		c.t.Fatalf("redistest: kill master: node %d is a %s", i, got)
	}
	replica := c.ReplicaOf(i)
	c.Nodes[i].Stop()
	c.WaitHealthy()
	if got := c.Role(replica); got != "master" {
		c.t.Fatalf("redistest: node %d, the replica of node %d, is a %s after the failover", replica, i, got)
	}
	return replica
}

// ReplicaOf returns the index of a running replica of node i, a master.
func (c *Cluster) ReplicaOf(i int) int {
	c.t.Helper()
	for j := range c.Nodes {
		if j != i && c.up(j) && c.replicaOf(j) == c.ids[i] {
			return j
		}
	}
	c.t.Fatalf("redistest: node %d has no replica", i)
	return -1
}

// replicaOf returns the id of node j's master, or "" for a master.
func (c *Cluster) replicaOf(j int) string {
	c.t.Helper()
	nodes, err := query(c.Nodes[j].Addr, func(ctx context.Context, r *redis.Client) (string, error) {
		return r.ClusterNodes(ctx).Result()
	})
	if err != nil {
		c.t.Fatalf("redistest: cluster nodes of node %d: %v", j, err)
	}
	f := strings.Fields(nodeLine(nodes, c.ids[j]))
	if len(f) < 4 || f[3] == "-" {
		return ""
	}
	return f[3]
}

// Restart starts node i again after KillMaster (or kills and restarts it)
// on its ports with its cluster config and no data, and waits until the
// cluster is healthy with it: a master that was failed over comes back as a
// replica of the node that took over.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Nodes[i].Restart(c.t)
	c.WaitHealthy()
}

// SetNodeTimeout sets cluster-node-timeout on every running node: how long
// a node may not answer before it is failed (and a master replaced).
func (c *Cluster) SetNodeTimeout(d time.Duration) {
	c.t.Helper()
	for i, s := range c.Nodes {
		if !c.up(i) {
			continue
		}
		_, err := query(s.Addr, func(ctx context.Context, r *redis.Client) (string, error) {
			return r.ConfigSet(ctx, "cluster-node-timeout", strconv.FormatInt(d.Milliseconds(), 10)).Result()
		})
		if err != nil {
			c.t.Fatalf("redistest: node %d: set cluster-node-timeout: %v", i, err)
		}
	}
}

// Pause stops node i with SIGSTOP; Resume continues it.
func (c *Cluster) Pause(i int) { c.Nodes[i].Pause(c.t) }

// Resume continues node i after Pause.
func (c *Cluster) Resume(i int) { c.Nodes[i].Resume(c.t) }

// query runs f on a short-lived client of addr.
func query(addr string, f func(context.Context, *redis.Client) (string, error)) (string, error) {
	r := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return f(ctx, r)
}
