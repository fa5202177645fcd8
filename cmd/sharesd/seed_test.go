package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector"
)

// TestSeedStreamReplicas: on a fresh cluster deployment `sharesd seed` runs
// before the projectors and creates the streams, so it honours
// STREAM_REPLICAS as they do (docker-compose.yml's cluster profile sets it
// to 3); otherwise the projectors would find R1 streams and keep them.
func TestSeedStreamReplicas(t *testing.T) {
	t.Parallel()
	c := natstest.StartCluster(t, 3)
	vars := map[string]string{"NATS_URL": c.URL, "STREAM_REPLICAS": "3", "LOG_LEVEL": "debug"}
	var stdout, stderr bytes.Buffer
	// seed bounds its own work (30 s); the test's deadline only backs it up.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, []string{"seed"}, func(k string) string { return vars[k] }, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("sharesd seed: %v\n%s", err, stderr.String())
	}
	_, js := c.Connect(t)
	for _, name := range []string{projector.StreamConfig().Name, projector.DeadLetterConfig().Name} {
		// A stream just created with three replicas answers its info once
		// it has elected a leader, which on a loaded machine takes a while:
		// ask again until it does.
		var replicas int
		polltest.WaitFor(t, time.Minute, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := js.Stream(ctx, name)
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			replicas = s.CachedInfo().Config.Replicas
			return nil
		})
		if want := 3; replicas != want {
			t.Errorf("stream %s has %d replicas, want %d (STREAM_REPLICAS)", name, replicas, want)
		}
	}
}
