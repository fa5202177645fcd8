package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/natstest"
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, []string{"seed"}, func(k string) string { return vars[k] }, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("sharesd seed: %v\n%s", err, stderr.String())
	}
	_, js := c.Connect(t)
	for _, name := range []string{projector.StreamConfig().Name, projector.DeadLetterConfig().Name} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if got, want := s.CachedInfo().Config.Replicas, 3; got != want {
			t.Errorf("stream %s has %d replicas, want %d (STREAM_REPLICAS)", name, got, want)
		}
	}
}
