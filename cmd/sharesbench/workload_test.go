package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

// TestWorkloadIsReproducible checks that a seed makes the same events from
// one version of the bench to the next, so runs on different versions
// measure the same workload: the digest is of the events seed 7 made when
// this test was written.
func TestWorkloadIsReproducible(t *testing.T) {
	t.Parallel()
	w, err := newWorkload(workloadConfig{Projects: 3, Renders: 20, Shares: 4500, Revoked: 0.1, Views: 200, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var buf []byte
	for i := range w.Len() {
		subject, id, data := w.Event(i, buf)
		buf = data
		fmt.Fprintf(h, "%s %s %s\n", subject, id, data)
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), "55a62cf12792919c6b951b3aa60e8fd88ec622e837a3705198467ceac439d754"; got != want {
		t.Fatalf("digest of seed 7's events = %s, want %s", got, want)
	}
}
