package natstest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
)

// TestStartCluster: three nodes form one JetStream cluster; an R3 stream
// keeps taking messages while its leader is down, and the node comes back
// as itself with the stream's messages.
func TestStartCluster(t *testing.T) {
	t.Parallel()

	c := natstest.StartCluster(t, 3)
	if got := strings.Count(c.URL, ","); got != 2 {
		t.Fatalf("URL = %q, want three comma-separated URLs", c.URL)
	}
	if strings.Contains(c.URL+",", ":4222,") {
		t.Fatalf("URL = %q uses port 4222", c.URL)
	}
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := projector.StreamConfig()
	cfg.Replicas = 3
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	leader := c.WaitStreamLeader(events.Stream)
	natstest.Publish(t, js, "craftkit.share.viewed.r1", []byte("{}"), "")

	c.Shutdown(leader)
	if l := c.WaitStreamLeader(events.Stream); l == leader {
		t.Fatalf("stream leader = %d, want another node than %d", l, leader)
	}
	natstest.Publish(t, js, "craftkit.share.viewed.r1", []byte("{}"), "")

	restarted := c.Restart(leader)
	if got, want := restarted.ClientURL(), strings.Split(c.URL, ",")[leader]; got != want {
		t.Fatalf("restarted node's URL = %q, want %q", got, want)
	}
	polltest.WaitFor(t, 20*time.Second, func() error {
		info, err := js.Stream(ctx, events.Stream)
		if err != nil {
			return err
		}
		st := info.CachedInfo()
		if got := st.State.Msgs; got != 2 {
			return fmt.Errorf("messages = %d, want 2", got)
		}
		if st.Cluster == nil || len(st.Cluster.Replicas) != 2 {
			return fmt.Errorf("cluster = %+v, want a leader and 2 replicas", st.Cluster)
		}
		for _, r := range st.Cluster.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("replica %s not current", r.Name)
			}
		}
		return nil
	})
}
