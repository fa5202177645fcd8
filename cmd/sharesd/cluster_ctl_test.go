package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/events/polltest"
	"github.com/craftkit/sharesd/projector/readmodel"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
)

// TestClusterCtl runs every one-off subcommand through run() against a
// 3-node JetStream cluster and a Redis Cluster (NATS_URL listing the
// nodes, REDIS_CLUSTER=true, STREAM_REPLICAS=3), with a projector (also in
// process) applying what they publish: seed, publish, keys create and
// revoke, status and status -json, verify, rebuild -render, rebuild and
// deadletter list. Each does its job and exits 0; at the end Verify finds
// the read model equal to the stream.
func TestClusterCtl(t *testing.T) {
	t.Parallel()
	nats := natstest.StartCluster(t, 3)
	rc := redistest.StartCluster(t)
	_, js := nats.Connect(t)
	f := &faultEnv{js: js, store: testStore(rc.Client(t), readmodel.DefaultHorizon)}
	vars := map[string]string{"NATS_URL": nats.URL, "REDIS_URL": rc.URL, "REDIS_CLUSTER": "true", "STREAM_REPLICAS": "3", "LOG_LEVEL": "error"}
	getenv := func(k string) string { return vars[k] }
	ctx := context.Background()
	top := t // the projector runs until the whole test ends

	var proj *clusterProc
	var key, keyID, gen string
	bad := ctlShare("share-fax", "fax").WithID("ev-bad") // dead-lettered: fax is no channel
	for _, step := range []struct {
		name  string
		args  []string
		stdin string
		check func(t *testing.T, stdout string) // after run returned nil
	}{
		{"seed", []string{"seed"}, "", func(t *testing.T, out string) {
			want(t, out, "demo project published")
			waitStreams(t, js, 3)
			proj = startClusterProc(top, getenv, "projector")
			nats.WaitStreamLeader(events.Stream)
			f.waitCaughtUp(t, proj, 30*time.Second)
		}},
		{"publish", []string{"publish"}, strings.Join([]string{
			line(eventstest.RenderCreated(ctlProject, ctlRender).WithID("ev-render")),
			line(ctlShare("share-1", "link").WithID("ev-share-1")),
			line(eventstest.ShareViewed(ctlProject, ctlRender, "share-1").With("viewedAt", "2026-06-05T11:00:00Z").WithID("ev-view-1")),
		}, "\n"), func(t *testing.T, out string) {
			want(t, out, "3 stored, 0 duplicates")
			natstest.Publish(t, js, bad.Subject(), bad.Body(), bad.ID)
		}},
		{"keys create", []string{"keys", "create", "-project", ctlProject}, "", func(t *testing.T, out string) {
			km, im := keyLine.FindStringSubmatch(out), keyIDLine.FindStringSubmatch(out)
			if km == nil || im == nil {
				t.Fatalf("keys create printed no key or key id:\n%s", regexp.MustCompile(`ck_\w+`).ReplaceAllString(out, "ck_…"))
			}
			key, keyID = km[1], im[1]
			waitKey(t, f.store, key, false)
		}},
		{"keys revoke", []string{"keys", "revoke", "-project", ctlProject, "<key id>"}, "", func(t *testing.T, out string) {
			waitKey(t, f.store, key, true)
			f.waitCaughtUp(t, proj, 30*time.Second)
		}},
		{"status", []string{"status"}, "", func(t *testing.T, out string) {
			for _, w := range []string{"projecting, 8 partitions", ", lag 0 events", "noeviction (safe)"} {
				want(t, out, w)
			}
			if !regexp.MustCompile(`(?m)^dead letters\s+1$`).MatchString(out) {
				t.Errorf("status lacks one dead letter:\n%s", out)
			}
		}},
		{"status -json", []string{"status", "-json"}, "", func(t *testing.T, out string) {
			var rep statusReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("status -json: %v\n%s", err, out)
			}
			if rep.Active == nil || rep.Active.Lag != 0 || rep.Active.Position != rep.Stream.LastSeq {
				t.Errorf("status -json active = %+v, want at the stream's head %d with lag 0", rep.Active, rep.Stream.LastSeq)
			}
			if !rep.LeaseHeld || rep.DeadLetters == nil || *rep.DeadLetters != 1 || !rep.EvictionSafe || rep.Generations[rep.Active.Gen] == 0 {
				t.Errorf("status -json = %+v, want the lease held, 1 dead letter, a safe policy and keys in the active generation", rep)
			}
			gen = rep.Active.Gen
		}},
		{"verify", []string{"verify"}, "", func(t *testing.T, out string) {
			want(t, out, "checked 2 renders and 2 API keys")
			want(t, out, ": 0 differ")
		}},
		{"rebuild -render", []string{"rebuild", "-render", ctlRender}, "", func(t *testing.T, out string) {
			want(t, out, "render "+ctlRender+" rebuilt and swapped in")
		}},
		{"rebuild", []string{"rebuild"}, "", func(t *testing.T, out string) {
			ctl, err := f.store.ReadControl(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ctl.Active == gen {
				t.Errorf("active generation is still %s after the rebuild", gen)
			}
			want(t, out, "generation "+ctl.Active+" rebuilt and active")
			f.waitCaughtUp(t, proj, 30*time.Second)
		}},
		{"verify after rebuild", []string{"verify"}, "", func(t *testing.T, out string) {
			want(t, out, "checked 2 renders and 2 API keys")
			want(t, out, ": 0 differ")
		}},
		{"deadletter list", []string{"deadletter", "list"}, "", func(t *testing.T, out string) {
			want(t, out, bad.Subject())
			want(t, out, "data.channel")
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			args := append([]string(nil), step.args...)
			for i, a := range args {
				if a == "<key id>" {
					args[i] = keyID
				}
			}
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			if err := run(rctx, args, getenv, strings.NewReader(step.stdin), &stdout, &stderr); err != nil {
				t.Fatalf("sharesd %s: %v\n%s", step.name, err, polltest.Tail(stderr.String(), 10))
			}
			step.check(t, stdout.String())
		})
		if t.Failed() {
			return // the next steps build on this one
		}
	}
}

// want fails t unless out contains s.
func want(t *testing.T, out, s string) {
	t.Helper()
	if !strings.Contains(out, s) {
		t.Errorf("output lacks %q:\n%s", s, regexp.MustCompile(`ck_\w+`).ReplaceAllString(out, "ck_…"))
	}
}

// waitKey waits until the read model has key, revoked or not.
func waitKey(t *testing.T, store *readmodel.Store, key string, revoked bool) {
	t.Helper()
	polltest.WaitFor(t, 15*time.Second, func() error {
		k, err := store.Key(context.Background(), events.KeyHash(key))
		if err != nil {
			return err
		}
		if k.ProjectID != ctlProject || k.Revoked != revoked {
			return fmt.Errorf("key of project %s revoked %t, want %s and %t", k.ProjectID, k.Revoked, ctlProject, revoked)
		}
		return nil
	})
}

// clusterProc is `sharesd sub` running in process through run() until the
// test ends.
type clusterProc struct {
	logs *polltest.Buffer
	done chan error
}

func (p *clusterProc) alive() error {
	select {
	case err := <-p.done:
		p.done <- err // keep it for the cleanup
		return fmt.Errorf("sharesd returned %v\n%s", err, p.logs.Tail(30))
	default:
		return nil
	}
}

func startClusterProc(t *testing.T, getenv func(string) string, sub string) *clusterProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &clusterProc{logs: &polltest.Buffer{}, done: make(chan error, 1)}
	go func() {
		p.done <- run(ctx, []string{sub, "-http-addr", "127.0.0.1:0"}, getenv, strings.NewReader(""), p.logs, p.logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-p.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("sharesd %s returned %v", sub, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("sharesd %s did not return within 15s of its context ending", sub)
		}
	})
	return p
}
