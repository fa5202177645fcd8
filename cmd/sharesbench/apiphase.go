package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// measureHTTP runs the HTTP phases against the API (api.NewServer on a
// loopback listener, reading the projected Redis) and against the HTTP
// ceiling sending the API's own responses: closed loop on each size, the
// 304 path, open loop at half the 10-share rate, then freshness and
// revocation latency under that load.
func (b *bench) measureHTTP(ctx context.Context) (err error) {
	ardb, err := redisClient(b.redisURL, true, 0)
	if err != nil {
		return err
	}
	defer ardb.Close()
	astore := readmodel.New(ardb, readmodel.DefaultHorizon)
	handler, taken := newAPI(ctx, astore)
	apiAddr, stopAPI, err := serveHTTP(handler)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopAPI()) }()
	responses, err := fetchResponses(ctx, apiAddr, b.w.keys[0], b.fixedSizeOf())
	if err != nil {
		return err
	}
	ceilAddr, stopCeil, err := serveHTTP(ceiling(responses))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopCeil()) }()

	b.res.http, b.res.bodySize = map[string]loadResult{}, map[int]int{}
	for _, size := range fixedSizes {
		if err := b.closedLoops(ctx, size, apiAddr, ceilAddr, responses); err != nil {
			return err
		}
	}
	half := b.res.http["api 10"].rate() / 2
	if err := b.openLoops(ctx, half, apiAddr, ceilAddr); err != nil {
		return err
	}
	if err := b.freshness(ctx, astore, taken, apiAddr, b.listRequests(apiAddr, 10), half); err != nil {
		return err
	}
	if err := b.revocations(ctx, astore, apiAddr, b.listRequests(apiAddr, 10), half); err != nil {
		return err
	}
	return b.cachedMemory(ctx, astore)
}

// cachedMemory serves a second API, its body cache empty and bounded far
// above what it will hold, reads every render once through it and prints
// how much the process's heap grew per render kept, next to the mean body:
// the API's memory per cached render. The API shares the bench's process,
// so the figure holds the noise of what else the process did meanwhile
// (little: no load runs, the projector is idle).
func (b *bench) cachedMemory(ctx context.Context, store *readmodel.Store) error {
	before := heapAlloc()
	handler, taken := newAPIWith(ctx, store, 1<<30)
	select { // bodies are kept only while the announcements are followed
	case <-taken.live:
	case <-time.After(10 * time.Second):
		return errors.New("memory per cached render: the API did not follow the announcements within 10s")
	}
	apiAddr, stop, err := serveHTTP(handler)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	c, err := dial(apiAddr)
	if err != nil {
		return err
	}
	defer c.close()
	kept, bodies := 0, 0
	for _, rd := range b.w.renders {
		status, length, err := c.do(request(apiAddr, listPath(rd.id), "Authorization: Bearer "+b.w.keys[rd.project]))
		if err != nil {
			return fmt.Errorf("memory per cached render: %w", err)
		}
		if status == 200 {
			kept, bodies = kept+1, bodies+length
		}
	}
	grew := int64(heapAlloc()) - int64(before)
	runtime.KeepAlive(handler)
	if kept == 0 {
		return errors.New("memory per cached render: no render answered 200")
	}
	fmt.Fprintf(b.progress, "  API memory: %d renders read once, heap +%.1f MiB: %.0f B per cached render (mean body %.0f B)\n",
		kept, float64(grew)/(1<<20), float64(grew)/float64(kept), float64(bodies)/float64(kept))
	return nil
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// fixedSizeOf maps each fixed-size render's id to its number of shares.
func (b *bench) fixedSizeOf() map[string]int {
	sizeOf := map[string]int{}
	for _, size := range fixedSizes {
		for _, rd := range b.w.fixed[size] {
			sizeOf[b.w.renders[rd].id] = size
		}
	}
	return sizeOf
}

// closedLoops measures the renders with size shares in closed loop, on the
// ceiling and on the API, each answering 200 then 304. Both get requests
// addressed to the API.
func (b *bench) closedLoops(ctx context.Context, size int, apiAddr, ceilAddr string, responses map[string]fixedResponse) error {
	ok, notModified := b.listRequests(apiAddr, size), b.revalidations(apiAddr, size, responses)
	for _, m := range []struct {
		key, addr string
		reqs      [][]byte
		want      int
	}{
		{fmt.Sprintf("ceiling %d", size), ceilAddr, ok, 200},
		{fmt.Sprintf("api %d", size), apiAddr, ok, 200},
		{fmt.Sprintf("ceiling %d 304", size), ceilAddr, notModified, 304},
		{fmt.Sprintf("api %d 304", size), apiAddr, notModified, 304},
	} {
		r, err := b.closedLoop(ctx, m.key, m.addr, m.reqs, m.want)
		if err != nil {
			return err
		}
		b.res.http[m.key] = r
	}
	b.res.bodySize[size] = len(responses[b.w.renders[b.w.fixed[size][0]].id].body)
	return nil
}

// closedLoop runs one closed-loop measurement and prints its line; an
// answer other than want fails it.
func (b *bench) closedLoop(ctx context.Context, what, addr string, reqs [][]byte, want int) (loadResult, error) {
	r, err := closedLoop(ctx, addr, reqs, want, b.cfg.Clients, b.cfg.Warmup, b.cfg.Duration, b.cpu(ctx))
	if err == nil && r.errors > 0 {
		err = fmt.Errorf("%s: %d of %d answers were not %d", what, r.errors, r.requests, want)
	}
	fmt.Fprintf(b.progress, "  %-26s %8.0f req/s  p50 %6.2fms  p99 %6.2fms  p99.9 %6.2fms\n",
		what, r.rate(), ms(r.pct(0.50)), ms(r.pct(0.99)), ms(r.pct(0.999)))
	return r, err
}

// openLoops sends 10-share requests at rate in open loop, to the API and
// then to the ceiling: what the machine and the generator add to the tail
// at this rate without the API's work.
func (b *bench) openLoops(ctx context.Context, rate float64, apiAddr, ceilAddr string) (err error) {
	b.res.halfRate, err = openLoop(ctx, apiAddr, b.listRequests(apiAddr, 10), 200, 2*b.cfg.Clients, rate, b.cfg.Duration, b.cpu(ctx))
	if err != nil {
		return err
	}
	h := b.res.halfRate
	fmt.Fprintf(b.progress, "  open loop at %.0f req/s: %.0f req/s, p50 %.2fms p99 %.2fms p99.9 %.2fms\n",
		rate, h.rate(), ms(h.pct(0.5)), ms(h.pct(0.99)), ms(h.pct(0.999)))
	b.res.halfRateCeiling, err = openLoop(ctx, ceilAddr, b.listRequests(ceilAddr, 10), 200, 2*b.cfg.Clients, rate, b.cfg.Duration, b.cpu(ctx))
	return err
}

// listRequests are the GET list requests, addressed to host, for the
// renders with size shares.
func (b *bench) listRequests(host string, size int) [][]byte {
	var reqs [][]byte
	for _, rd := range b.w.fixed[size] {
		reqs = append(reqs, request(host, listPath(b.w.renders[rd].id), b.authHeader()))
	}
	return reqs
}

// revalidations are listRequests that carry their render's ETag in
// If-None-Match, which the API answers 304.
func (b *bench) revalidations(host string, size int, responses map[string]fixedResponse) [][]byte {
	var reqs [][]byte
	for _, rd := range b.w.fixed[size] {
		id := b.w.renders[rd].id
		reqs = append(reqs, request(host, listPath(id), b.authHeader(), "If-None-Match: "+responses[id].header.Get("ETag")))
	}
	return reqs
}

func listPath(renderID string) string { return "/v1/renders/" + renderID + "/shares" }

// authHeader authenticates as project 0, which owns the fixed-size renders.
func (b *bench) authHeader() string { return "Authorization: Bearer " + b.w.keys[0] }

// cpu reads the CPU clocks of this process and of redis-server.
func (b *bench) cpu(ctx context.Context) func() cpuClock {
	return func() cpuClock { return readCPU(ctx, b.rdb) }
}

// freshness publishes live views at -rate per second while the API serves
// half its maximum rate, and measures publish-to-visible latency through
// the API: to the moment the API took in the announcement of the batch
// that applied it (see takenIn).
func (b *bench) freshness(ctx context.Context, store *readmodel.Store, taken *takenIn, apiAddr string, reqs [][]byte, apiRate float64) error {
	collect, err := listenApplied(ctx, store) // the projector's own announcements, to split the latency
	if err != nil {
		return err
	}
	taken.start()
	type loadOut struct {
		r   loadResult
		err error
	}
	apiLoad := make(chan loadOut, 1)
	go func() {
		r, err := openLoop(ctx, apiAddr, reqs, 200, 2*b.cfg.Clients, apiRate, b.cfg.Freshness+time.Second, b.cpu(ctx))
		apiLoad <- loadOut{r, err}
	}()
	c0 := readCPU(ctx, b.rdb)
	pub, err := publishLive(ctx, b.js, b.w, b.cfg.Rate, b.cfg.Freshness, b.cfg.workload.Seed)
	if err != nil {
		return err
	}
	b.res.fresh.cpu = readCPU(ctx, b.rdb).since(c0)
	if _, err := waitCaughtUp(ctx, store, pub[len(pub)-1].seq, time.Minute, b.progress); err != nil {
		return err
	}
	ann := taken.stop()
	inRedis, _ := visibility(pub, collect())
	lat, missing := visibility(pub, ann)
	if missing > 0 {
		return fmt.Errorf("freshness: %d of %d live events were never announced as applied", missing, len(pub))
	}
	out := <-apiLoad
	if out.err != nil {
		return out.err
	}
	b.res.fresh.lat, b.res.fresh.events, b.res.fresh.api = lat, len(pub), out.r
	b.res.fresh.rate = float64(len(pub)) / b.cfg.Freshness.Seconds()
	b.res.fresh.batches, b.res.fresh.gap = len(ann), longestGap(ann)
	fmt.Fprintf(b.progress, "  freshness: announced as applied in Redis (another subscriber): p50 %.2fms p99 %.2fms max %.2fms\n",
		ms(pct(inRedis, 0.5)), ms(pct(inRedis, 0.99)), ms(pct(inRedis, 1)))
	fmt.Fprintf(b.progress, "  freshness: %d events at %.0f/s: p50 %.2fms p99 %.2fms max %.2fms; %d batches, longest gap %.0fms; API %.0f req/s p99 %.2fms\n",
		len(pub), b.res.fresh.rate, ms(pct(lat, 0.5)), ms(pct(lat, 0.99)), ms(pct(lat, 1)), len(ann), ms(b.res.fresh.gap), out.r.rate(), ms(out.r.pct(0.99)))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
