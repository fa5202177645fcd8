package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// results is everything the bench measured.
type results struct {
	machine         machine
	workload        string
	events          int
	total           time.Duration
	publishRate     float64
	drain           float64
	drainCPU        usage
	apply           applyRun // default dedupe horizon: the Redis ceiling
	applyNoDedupe   applyRun // 1ms horizon: memory once the horizon passed
	catchUp         phaseTime
	projectedMemory int64
	http            map[string]loadResult
	bodySize        map[int]int
	halfRate        loadResult
	halfRateCeiling loadResult // the same open loop on the HTTP ceiling
	fresh           struct {
		lat     []time.Duration
		events  int
		rate    float64
		api     loadResult
		cpu     usage
		batches int           // announcements: batches the projector applied
		gap     time.Duration // longest time between two announcements
	}
	revoke revocationRun
}

func (w *workload) describe() string {
	return fmt.Sprintf("%d events: %d projects (1 API key each), %d renders, %d shares (%d revoked), %d views; seed %d",
		w.Len(), len(w.projects), len(w.renders), len(w.shares), len(w.revoked), len(w.views), w.cfg.Seed)
}

// table is a Markdown table, printed as it is built.
type table struct {
	w io.Writer
}

func (t table) row(cells ...string) { fmt.Fprintf(t.w, "| %s |\n", strings.Join(cells, " | ")) }

// verdict says whether got meets a target (higher is better unless lower).
func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

// printReport prints the results as Markdown: what ran where, then one
// table of ceilings, projection, API and memory rows.
func printReport(out io.Writer, cfg config, r results) {
	printSetup(out, cfg, r)
	t := table{out}
	t.row("Phase", "Measure", "Result", "Ceiling", "Ratio", "Target", "CPU go/redis")
	t.row("---", "---", "---:", "---:", "---:", "---", "---")
	ceilingRows(t, cfg, r)
	projectionRows(t, r)
	apiRows(t, r)
	memoryRows(t, cfg, r)
	fmt.Fprintln(out)
}

// printSetup prints the command, machine, workload and load settings.
func printSetup(out io.Writer, cfg config, r results) {
	m := r.machine
	fmt.Fprintf(out, "\n## sharesbench results\n\n")
	fmt.Fprintf(out, "- command: `%s`\n", m.CommandLine)
	fmt.Fprintf(out, "- machine: %d CPUs, %s; %s; redis-server %s; nats-server %s (embedded unless -nats-url)\n", m.CPUs, m.CPUModel, m.GoVersion, m.Redis, m.NATSServer)
	fmt.Fprintf(out, "- date: %s; whole run %.0fs; load average %s at the start, %s at the end (2 would be both cores busy)\n",
		m.Date, r.total.Seconds(), m.LoadBefore, loadAverage())
	fmt.Fprintf(out, "- workload: %s; published with async publish at %s events/s\n", r.workload, num(r.publishRate))
	fmt.Fprintf(out, "- HTTP: %d closed-loop keep-alive clients in process, %s measured after %s warm-up per row; CPU columns are cores used (Go process / redis-server)\n\n",
		cfg.Clients, cfg.Duration, cfg.Warmup)
}

// ceilingRows: what JetStream, Redis and an HTTP server doing no work
// reach on this machine, which the other rows are compared with.
func ceilingRows(t table, cfg config, r results) {
	t.row("ceiling", "JetStream drain: ordered consumer, whole stream, no processing", num(r.drain)+" ev/s", "", "", "", cores(r.drainCPU))
	t.row("ceiling", fmt.Sprintf("Redis apply: Store.Apply from memory, %d pipelines × %d events", cfg.ApplyWorkers, cfg.BatchSize),
		num(r.apply.rate())+" ev/s", "", "", "", cores(r.apply.cpu))
	for _, size := range fixedSizes {
		c := r.http[fmt.Sprintf("ceiling %d", size)]
		t.row("ceiling", fmt.Sprintf("HTTP mux, fixed body of %d share(s) (%s B)", size, num(float64(r.bodySize[size]))), reqs(c), "", "", "", cores(c.cpu))
	}
	c304 := r.http["ceiling 10 304"]
	t.row("ceiling", "HTTP mux, fixed 304", reqs(c304), "", "", "", cores(c304.cpu))
}

// projectionRows: the catch-up against the slower of its two ceilings, and
// publish-to-visible freshness.
func projectionRows(t table, r results) {
	slower := min(r.drain, r.apply.rate())
	catch := float64(r.events) / r.catchUp.elapsed.Seconds()
	t.row("projection", fmt.Sprintf("catch-up from empty Redis: projector.Run over %s events (full rebuild %.1fs)", num(float64(r.events)), r.catchUp.elapsed.Seconds()),
		num(catch)+" ev/s", num(slower)+" ev/s", ratio(catch/slower), "≥ 0.50 "+verdict(catch/slower >= 0.5), cores(r.catchUp.cpu))
	fp99 := pct(r.fresh.lat, 0.99)
	t.row("projection", fmt.Sprintf("freshness: publish → visible, %s ev/s live, API at %s req/s (%d batches, longest gap %s)",
		num(r.fresh.rate), num(r.fresh.api.rate()), r.fresh.batches, msf(r.fresh.gap)),
		fmt.Sprintf("p50 %s / p99 %s / max %s", msf(pct(r.fresh.lat, 0.5)), msf(fp99), msf(pct(r.fresh.lat, 1))), "", "",
		"p99 ≤ 50 ms "+verdict(fp99 <= 50*time.Millisecond), cores(r.fresh.cpu))
}

// apiRows: the API against the HTTP ceiling, closed loop per size and 304,
// then the open loop's tail beside the ceiling's.
func apiRows(t table, r results) {
	targets := map[int]float64{10: 0.50, 100: 0.35}
	for _, size := range fixedSizes {
		a, c := r.http[fmt.Sprintf("api %d", size)], r.http[fmt.Sprintf("ceiling %d", size)]
		target := ""
		if want, ok := targets[size]; ok {
			target = fmt.Sprintf("≥ %.2f %s", want, verdict(a.rate()/c.rate() >= want))
		}
		t.row("api", fmt.Sprintf("GET list, %d share(s), 200", size), reqs(a), num(c.rate()), ratio(a.rate()/c.rate()), target, cores(a.cpu))
	}
	for _, size := range fixedSizes {
		a, c := r.http[fmt.Sprintf("api %d 304", size)], r.http[fmt.Sprintf("ceiling %d 304", size)]
		t.row("api", fmt.Sprintf("GET list, %d share(s), If-None-Match → 304", size), reqs(a), num(c.rate()), ratio(a.rate()/c.rate()), "", cores(a.cpu))
	}
	h := r.halfRate
	t.row("api", fmt.Sprintf("open loop at half the 10-share maximum (%s req/s sent)", num(h.rate())),
		tail(h), "", "", "p99 ≤ 5 ms "+verdict(h.pct(0.99) <= 5*time.Millisecond), cores(h.cpu))
	hc := r.halfRateCeiling
	t.row("api", fmt.Sprintf("the same open loop on the HTTP ceiling (%s req/s sent): the machine's own tail", num(hc.rate())),
		tail(hc), "", "", "", cores(hc.cpu))
	rv := r.revoke
	t.row("api", fmt.Sprintf("revocation: publish → first 401, %d keys revoked one at a time, API at %s req/s (p99 %s)", len(rv.published), num(rv.api.rate()), msf(rv.api.pct(0.99))),
		spread(rv.published), "", "", "", cores(rv.api.cpu))
	ap99 := pct(rv.applied, 0.99)
	t.row("api", "revocation: applied in Redis (announced) → first 401",
		spread(rv.applied), "", "", "p99 ≤ 50 ms "+verdict(ap99 <= 50*time.Millisecond), "")
}

func spread(sorted []time.Duration) string {
	return fmt.Sprintf("p50 %s / p99 %s / max %s", msf(pct(sorted, 0.5)), msf(pct(sorted, 0.99)), msf(pct(sorted, 1)))
}

func tail(l loadResult) string {
	return fmt.Sprintf("p50 %s / p99 %s / p99.9 %s", msf(l.pct(0.5)), msf(l.pct(0.99)), msf(l.pct(0.999)))
}

// memoryRows: Redis memory per render, share and view, within the dedupe
// horizon and once it has passed (the two apply-ceiling runs), and after
// the catch-up.
func memoryRows(t table, cfg config, r results) {
	renders, shares := float64(countOf(r, "renders")), float64(countOf(r, "shares"))
	views := float64(countOf(r, "views"))
	d, n := r.apply.memory, r.applyNoDedupe.memory
	perShare := float64(n["shares"]+n["revocations"]+n["views"]) / shares
	t.row("memory", "per render (render.created; hash + its dedupe table)", bytesf(float64(n["renders"])/renders), "", "", "", "")
	t.row("memory", "per share once the dedupe horizon has passed (record with its click counter, revocation)", bytesf(perShare), "", "", "≤ 250 B "+verdict(perShare <= 250), "")
	t.row("memory", "per share within the horizon (plus its event's dedupe digest)", bytesf(float64(d["shares"]+d["revocations"]+n["views"])/shares), "", "", "", "")
	t.row("memory", "per view once the horizon has passed (a counter in its share's record, bounded by shares)", bytesf(float64(n["views"])/views), "", "", "", "")
	perDigest := float64(d["views"]-n["views"]) / views
	t.row("memory", "per view within the horizon: its dedupe digest in the render's dedupe table", bytesf(perDigest), "", "", "≤ 63 B "+verdict(perDigest <= 63), "")
	t.row("memory", fmt.Sprintf("dedupe horizon 24h at %s ev/s (digests held)", num(cfg.Rate)), gb(perDigest*cfg.Rate*86400), "", "", "bounded by rate × horizon", "")
	t.row("memory", "used_memory after the catch-up, per event projected", bytesf(float64(r.projectedMemory)/float64(r.events)),
		"", "", "", fmt.Sprintf("total %s", gb(float64(r.projectedMemory))))
}

func countOf(r results, step string) int { return max(r.apply.counts[step], 1) }

func num(f float64) string {
	switch {
	case f >= 1e6:
		return fmt.Sprintf("%.2fM", f/1e6)
	case f >= 1e4:
		return fmt.Sprintf("%.1fk", f/1e3)
	default:
		return fmt.Sprintf("%.0f", f)
	}
}

func reqs(l loadResult) string {
	return fmt.Sprintf("%s req/s (p50 %s, p99 %s, p99.9 %s)", num(l.rate()), msf(l.pct(0.5)), msf(l.pct(0.99)), msf(l.pct(0.999)))
}

func msf(d time.Duration) string { return fmt.Sprintf("%.2f ms", ms(d)) }

func ratio(f float64) string { return fmt.Sprintf("%.2f", f) }

func cores(u usage) string { return fmt.Sprintf("%.2f / %.2f", u.goCores, u.redisCores) }

func bytesf(f float64) string { return fmt.Sprintf("%.0f B", f) }

func gb(f float64) string {
	if f >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", f/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", f/(1<<20))
}
