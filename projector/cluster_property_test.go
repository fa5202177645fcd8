package projector_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// TestPropertyCluster is TestProperty on a 3-node JetStream cluster, with
// the streams R3, and a Redis Cluster of 3 masters with a replica each:
// the same random streams, restarts and rewinds of the saved position, and
// at the end the API and Verify must equal the reference model. On a
// cluster every batch waits for a replica of each master it wrote to
// (fence + WAIT) and a render's keys share one slot, so this catches a
// script or a pipeline that crosses slots, or a read that a cluster
// answers differently from a single node.
//
// The seeds run one after another on one pair of clusters, emptied between
// them; replay one with -prop.seed=<seed> as in TestProperty.
func TestPropertyCluster(t *testing.T) {
	t.Parallel()
	seeds := []uint64{1, 2, 3, 4, 5}
	switch {
	case *propSeed != 0:
		seeds = []uint64{*propSeed}
	case testing.Short():
		seeds = seeds[:1]
	}
	const n = 200
	nats := natstest.StartCluster(t, 3)
	_, js := nats.Connect(t, jetstream.WithPublishAsyncTimeout(10*time.Second))
	rdb := redistest.StartCluster(t).Client(t)
	for _, seed := range seeds {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay with: go test ./projector -run 'TestPropertyCluster/seed=%d$' -args -prop.seed=%d", seed, seed)
				}
			}()
			propClusterReset(t, js, rdb)
			nats.WaitStreamLeader(events.Stream)
			propRunOn(t, seed, n, js, rdb)
		})
	}
}

// propClusterReset empties both clusters for the next seed: it deletes the
// streams and the dead-letter bucket and creates them again with three
// replicas (as STREAM_REPLICAS=3 makes sharesd do), and flushes every
// Redis master (its replica follows).
func propClusterReset(t *testing.T, js jetstream.JetStream, rdb *redis.ClusterClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{events.Stream, events.DeadLetterStream} {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("delete stream %s: %v", name, err)
		}
	}
	if err := js.DeleteKeyValue(ctx, projector.DeadLetterBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("delete bucket %s: %v", projector.DeadLetterBucket, err)
	}
	for _, cfg := range []jetstream.StreamConfig{projector.StreamConfig(), projector.DeadLetterConfig()} {
		cfg.Replicas = 3
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatalf("create stream %s R3: %v", cfg.Name, err)
		}
	}
	kv := projector.DeadLetterBucketConfig()
	kv.Replicas = 3
	if _, err := js.CreateKeyValue(ctx, kv); err != nil {
		t.Fatalf("create bucket %s R3: %v", kv.Bucket, err)
	}
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.FlushAll(ctx).Err()
	})
	if err != nil {
		t.Fatalf("flush redis cluster: %v", err)
	}
}
