package readmodel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/model"
)

// TestKeyHashOrderIndependent: the partitions of the stream are applied
// independently, so the API key events of different key ids reach Redis in
// any order, each key id's own in stream order. Whatever the order, and
// with redeliveries, the keys must end as applying the stream in order
// does (the reference model), and what is rejected (the events answered
// HashTaken or Mismatch, and the creations another one took a hash from)
// must be exactly what the model rejects.
func TestKeyHashOrderIndependent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 0)
	ctx := context.Background()
	const streams = 60
	active := f.gen
	for seed := range uint64(streams) {
		rng := rand.New(rand.NewPCG(seed, 11))
		gen := fmt.Sprintf("gkeys%d", seed)
		evs := keyStream(rng, seed)
		ops := make([]Op, len(evs))
		msgs := make([]model.Msg, len(evs))
		for i, e := range evs {
			at := epoch.Add(time.Duration(i+1) * time.Millisecond)
			ops[i] = Op{Seq: uint64(i + 1), Time: at, Event: e.Decode(t)}
			msgs[i] = model.Msg{Seq: uint64(i + 1), Time: at, Subject: e.Subject(), Data: e.Body()}
		}
		want := model.Fold(msgs, time.Hour)
		if ok, err := f.store.Activate(ctx, gen, active); err != nil || !ok {
			t.Fatalf("activate %s: ok=%v err=%v", gen, ok, err)
		}
		active = gen

		rejected := map[uint64]string{}
		for _, batch := range interleaveByKey(rng, ops) {
			res, _, err := f.store.Apply(ctx, gen, batch, 0, false)
			if err != nil {
				t.Fatalf("seed %d: apply: %v", seed, err)
			}
			for i, r := range res {
				op := batch[i]
				switch r.Outcome {
				case HashTaken:
					rejected[op.Seq] = events.CodeKeyHashTaken
				case Mismatch, StaleMismatch:
					rejected[op.Seq] = events.CodeProjectMismatch
				}
				for _, s := range r.Rejects {
					rejected[s] = events.CodeKeyHashTaken
				}
			}
		}

		if !mapsEqual(rejected, want.Dead) {
			t.Fatalf("seed %d: rejected %v, want %v (stream:\n%s)", seed, rejected, want.Dead, describeKeys(evs))
		}
		for _, h := range keyHashes {
			got, err := f.store.Key(ctx, events.KeyHash(h))
			var wantKey Key
			found := false
			for id, k := range want.Keys {
				if k.Hash == events.KeyHash(h) {
					wantKey, found = Key{ID: id, ProjectID: k.Project, Environment: k.Env, Revoked: k.Revoked}, true
				}
			}
			switch {
			case !found && !errors.Is(err, ErrNotFound):
				t.Fatalf("seed %d: key %s = %+v, %v; want none (stream:\n%s)", seed, h, got, err, describeKeys(evs))
			case found && (err != nil || got != wantKey):
				t.Fatalf("seed %d: key %s = %+v, %v; want %+v (stream:\n%s)", seed, h, got, err, wantKey, describeKeys(evs))
			}
		}
	}
}

var (
	keyHashes   = []string{"ck_live_order_a", "ck_live_order_b"}
	keyIDs      = []string{"key_1", "key_2", "key_3"}
	keyProjects = []string{projectA, projectB}
)

// keyStream is a random stream of API key events over a few key ids,
// hashes and projects, so that hashes are contested.
func keyStream(rng *rand.Rand, seed uint64) []eventstest.Event {
	n := 4 + rng.IntN(8)
	evs := make([]eventstest.Event, n)
	for i := range evs {
		id := keyIDs[rng.IntN(len(keyIDs))]
		project := keyProjects[0]
		if rng.IntN(6) == 0 {
			project = keyProjects[1]
		}
		if rng.IntN(4) == 0 {
			evs[i] = eventstest.APIKeyRevoked(project, id)
		} else {
			evs[i] = eventstest.APIKeyCreated(project, id, keyHashes[rng.IntN(len(keyHashes))], "live")
		}
		evs[i] = evs[i].WithID(fmt.Sprintf("ev-%d-%d", seed, i))
	}
	return evs
}

// interleaveByKey splits ops into batches as independent partitions would
// apply them: each key id's ops in order, the key ids interleaved at
// random, and now and then an op delivered again.
func interleaveByKey(rng *rand.Rand, ops []Op) [][]Op {
	queues := map[string][]Op{}
	var ids []string
	for _, op := range ops {
		id := keyIDOf(op)
		if _, ok := queues[id]; !ok {
			ids = append(ids, id)
		}
		queues[id] = append(queues[id], op)
	}
	var batches [][]Op
	var done []Op
	for len(ids) > 0 {
		i := rng.IntN(len(ids))
		q := queues[ids[i]]
		k := 1 + rng.IntN(len(q))
		batch := slices.Clone(q[:k])
		if len(done) > 0 && rng.IntN(3) == 0 {
			batch = append(batch, done[rng.IntN(len(done))]) // a redelivery
		}
		batches = append(batches, batch)
		done = append(done, q[:k]...)
		if queues[ids[i]] = q[k:]; len(q) == k {
			ids = slices.Delete(ids, i, i+1)
		}
	}
	return batches
}

func keyIDOf(op Op) string {
	switch d := op.Event.Data.(type) {
	case *events.APIKeyCreated:
		return d.KeyID
	case *events.APIKeyRevoked:
		return d.KeyID
	}
	panic(fmt.Sprintf("op %d is no API key event", op.Seq))
}

func describeKeys(evs []eventstest.Event) string {
	var s string
	for i, e := range evs {
		s += fmt.Sprintf("  %d %s %s %s %.8v\n", i+1, e.Type, e.Project[:8], e.Key, e.Data["keyHash"])
	}
	return s
}

func mapsEqual(a, b map[uint64]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
