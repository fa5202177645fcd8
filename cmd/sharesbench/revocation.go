package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// revocationRun is what the revocation phase measured: for each revoked
// key, from the revocation's publish, and from its announcement as applied
// in Redis, to the API's first 401 for it.
type revocationRun struct {
	published []time.Duration // sorted
	applied   []time.Duration // sorted; 0 when the 401 came first
	api       loadResult      // the open loop beside
}

// revocations creates -revocations keys of project 0, uses each once, then
// revokes them one at a time while the API serves the open loop at
// apiRate: after each publish one more connection asks with the revoked
// key, without pause, until the API answers 401.
func (b *bench) revocations(ctx context.Context, store *readmodel.Store, apiAddr string, reqs [][]byte, apiRate float64) error {
	n := b.cfg.Revocations
	render := b.w.renders[b.w.fixed[10][0]].id
	keys, last := make([]string, n), uint64(0)
	for i := range keys {
		keys[i] = events.KeyPrefix(events.EnvLive) + "bench_revoke_" + strconv.Itoa(i) + "_" + strconv.FormatUint(b.cfg.workload.Seed, 10)
		subject, id, data := b.keyEvent(events.TypeAPIKeyCreated, i, keys[i])
		ack, err := b.js.Publish(ctx, subject, data, jetstream.WithMsgID(id))
		if err != nil {
			return fmt.Errorf("revocations: publish apikey.created: %w", err)
		}
		last = ack.Sequence
	}
	if _, err := waitCaughtUp(ctx, store, last, time.Minute, b.progress); err != nil {
		return err
	}
	c, err := dial(apiAddr)
	if err != nil {
		return err
	}
	defer c.close()
	ask := func(key string) (int, error) {
		status, _, err := c.do(request(apiAddr, listPath(render), "Authorization: Bearer "+key))
		return status, err
	}
	for i, key := range keys { // cached in the API, as a key in use is
		if status, err := ask(key); err != nil || status != 200 {
			return fmt.Errorf("revocations: key %d before its revocation: status %d, %v", i, status, err)
		}
	}
	collect, err := listenApplied(ctx, store)
	if err != nil {
		return err
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	load := make(chan loadResult, 1)
	go func() {
		r, _ := openLoop(loadCtx, apiAddr, reqs, 200, 2*b.cfg.Clients, apiRate, time.Hour, b.cpu(ctx))
		load <- r
	}()
	type revoked struct {
		seq           uint64
		sent, refused time.Time
	}
	revs := make([]revoked, n)
	for i, key := range keys {
		if status, err := ask(key); err != nil || status != 200 {
			return fmt.Errorf("revocations: key %d before its revocation: status %d, %v", i, status, err)
		}
		subject, id, data := b.keyEvent(events.TypeAPIKeyRevoked, i, key)
		sent := time.Now()
		ack, err := b.js.Publish(ctx, subject, data, jetstream.WithMsgID(id))
		if err != nil {
			return fmt.Errorf("revocations: publish apikey.revoked: %w", err)
		}
		for {
			status, err := ask(key)
			if err != nil {
				return err
			}
			if status == 401 {
				break
			}
			if status != 200 || time.Since(sent) > 10*time.Second {
				return fmt.Errorf("revocations: key %d %v after its revocation: status %d", i, time.Since(sent), status)
			}
		}
		revs[i] = revoked{seq: ack.Sequence, sent: sent, refused: time.Now()}
	}
	stopLoad()
	api := <-load
	ann := collect()
	var run revocationRun
	for _, r := range revs {
		run.published = append(run.published, r.refused.Sub(r.sent))
		if j := sort.Search(len(ann), func(j int) bool { return ann[j].pos >= r.seq }); j < len(ann) {
			run.applied = append(run.applied, max(r.refused.Sub(ann[j].at), 0))
		}
	}
	slices.Sort(run.published)
	slices.Sort(run.applied)
	run.api = api
	b.res.revoke = run
	fmt.Fprintf(b.progress, "  revocations: %d, publish → first 401 p50 %.2fms p99 %.2fms max %.2fms; applied → first 401 p50 %.2fms p99 %.2fms max %.2fms; API %.0f req/s p99 %.2fms\n",
		n, ms(pct(run.published, 0.5)), ms(pct(run.published, 0.99)), ms(pct(run.published, 1)),
		ms(pct(run.applied, 0.5)), ms(pct(run.applied, 0.99)), ms(pct(run.applied, 1)), api.rate(), ms(api.pct(0.99)))
	if len(run.applied) < n {
		return fmt.Errorf("revocations: %d of %d were never announced as applied", n-len(run.applied), n)
	}
	return nil
}

// keyEvent is the apikey event t for the i-th key of the revocation phase,
// of project 0.
func (b *bench) keyEvent(t events.Type, i int, key string) (subject, id string, data []byte) {
	keyID := "key_revoke_" + strconv.Itoa(i)
	id = "bench-revoke-" + strconv.FormatUint(b.cfg.workload.Seed, 10) + "-" + string(t) + "-" + strconv.Itoa(i)
	data = envelope(nil, id, t, time.Now().UnixMilli(), b.w.projects[0], "")
	if t == events.TypeAPIKeyCreated {
		data = append(data, `"keyId":"`+keyID+`","keyHash":"`+events.KeyHash(key)+`","environment":"`+events.EnvLive+`"}}`...)
	} else {
		data = append(data, `"keyId":"`+keyID+`"}}`...)
	}
	return events.Subject(t, keyID), id, data
}
