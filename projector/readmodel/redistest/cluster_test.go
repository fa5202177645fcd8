package redistest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// TestStartCluster: six nodes form a cluster of three masters with a
// replica each, reachable through the seed URL; a master killed with
// SIGKILL is replaced by its replica with the writes it had acknowledged
// to a replica (WAIT), and comes back as a replica.
func TestStartCluster(t *testing.T) {
	t.Parallel()

	c := redistest.StartCluster(t)
	if !strings.HasPrefix(c.URL, "redis://127.0.0.1:") || strings.Count(c.URL, "addr=") != 5 {
		t.Fatalf("URL = %q, want redis://host:port?addr=…, six nodes", c.URL)
	}
	masters := 0
	for i, s := range c.Nodes {
		if strings.HasSuffix(s.Addr, ":6379") {
			t.Fatalf("node %d listens on %s", i, s.Addr)
		}
		if c.Role(i) == "master" {
			masters++
		}
	}
	if masters != 3 {
		t.Fatalf("masters = %d, want 3", masters)
	}

	rdb := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const key = "k{a}"
	owner := c.MasterOf(key)
	node, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := node.Options().Addr, c.Nodes[owner].Addr; got != want {
		t.Fatalf("master of %s = %s, want %s", key, got, want)
	}
	p := node.Pipeline() // one connection: WAIT covers the SET
	p.Set(ctx, key, "v", 0)
	acked := p.Do(ctx, "WAIT", 1, 2000)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := acked.Int(); n != 1 {
		t.Fatalf("WAIT = %d replicas, want 1", n)
	}

	replica := c.KillMaster(owner)
	if got := c.MasterOf(key); got != replica {
		t.Fatalf("master of %s after the failover = node %d, want its replica %d", key, got, replica)
	}
	rdb.ReloadState(ctx)
	if got, err := rdb.Get(ctx, key).Result(); err != nil || got != "v" {
		t.Fatalf("GET %s after the failover = %q, %v; want v", key, got, err)
	}

	c.Restart(owner)
	if got := c.Role(owner); got != "slave" {
		t.Fatalf("restarted node %d is a %s, want a replica", owner, got)
	}
	for i := range 100 { // every slot is served again
		k := "k" + strconv.Itoa(i)
		if err := rdb.Set(ctx, k, i, 0).Err(); err != nil && err != redis.Nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
}
