package main

import (
	"testing"

	"github.com/craftkit/sharesd/events"
)

// TestWorkloadFollowsTheContract checks that every event the bench
// publishes decodes, and that each project's apikey.created registers the
// bench's key for it under the contract's key rules, so the API load
// authenticates as the API would for any other key.
func TestWorkloadFollowsTheContract(t *testing.T) {
	t.Parallel()
	w, err := newWorkload(workloadConfig{Projects: 3, Renders: 20, Shares: 4500, Revoked: 0.1, Views: 200, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	keys := 0
	for i := range w.Len() {
		subject, _, data := w.Event(i, buf)
		buf = data
		ev, err := events.Decode(subject, data)
		if err != nil {
			t.Fatalf("event %d does not decode: %v", i, err)
		}
		created, ok := ev.Data.(*events.APIKeyCreated)
		if !ok {
			continue
		}
		key := w.keys[keys]
		if env, ok := events.KeyEnv(key); !ok || env != events.EnvLive {
			t.Errorf("key %d: KeyEnv = %q, %v; want %q, true", keys, env, ok, events.EnvLive)
		}
		if created.KeyHash != events.KeyHash(key) {
			t.Errorf("key %d: apikey.created carries a keyHash other than events.KeyHash of the key", keys)
		}
		if created.Environment != events.EnvLive {
			t.Errorf("key %d: environment %q, want %q", keys, created.Environment, events.EnvLive)
		}
		keys++
	}
	if keys != len(w.projects) {
		t.Fatalf("%d apikey.created events, want one per project (%d)", keys, len(w.projects))
	}
}
