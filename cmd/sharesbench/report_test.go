package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/report.md from printReport")

// TestReport checks the Markdown report of a fixed set of results against
// testdata/report.md: every row, figure and verdict. Only the load average
// at the end, read when the report is printed, is masked.
func TestReport(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printReport(&out, cfg, sampleResults())
	got := regexp.MustCompile(`, [^,]* at the end \(`).ReplaceAll(out.Bytes(), []byte(", LOAD at the end ("))

	golden := filepath.Join("testdata", "report.md")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("report differs from %s (go test -run TestReport -update to rewrite it):\n%s", golden, got)
	}
}

// sampleResults are results with a distinct figure in every field, so a
// figure printed in the wrong row shows.
func sampleResults() results {
	lat := func(base time.Duration) []time.Duration {
		var l []time.Duration
		for i := range 1000 {
			l = append(l, base+time.Duration(i)*time.Microsecond)
		}
		return l
	}
	load := func(n int, base time.Duration) loadResult {
		return loadResult{requests: n, elapsed: time.Second, lat: lat(base), cpu: usage{float64(n%7) / 4, float64(n%5) / 8}}
	}
	r := results{
		machine: machine{CPUs: 2, CPUModel: "Test CPU", GoVersion: "go1.x", Redis: "8.0.0", NATSServer: "2.x",
			Date: "2026-01-05", CommandLine: "sharesbench -quick", LoadBefore: "0.10 0.20 0.30"},
		workload: "a workload", events: 220000, total: 95 * time.Second, publishRate: 123456,
		drain: 456789, drainCPU: usage{0.9, 0},
		apply: applyRun{events: 220000, elapsed: 2 * time.Second, cpu: usage{1.1, 0.95},
			memory: map[string]int64{"renders": 3_000_000, "shares": 9_000_000, "revocations": 400_000, "views": 20_000_000},
			counts: map[string]int{"renders": 2003, "shares": 20000, "revocations": 2000, "views": 200000}},
		applyNoDedupe: applyRun{events: 220000, elapsed: 3 * time.Second,
			memory: map[string]int64{"renders": 2_000_000, "shares": 5_000_000, "revocations": 300_000, "views": 1_000_000}},
		catchUp:         phaseTime{elapsed: 4 * time.Second, cpu: usage{1.3, 0.7}},
		projectedMemory: 40_000_000,
		http:            map[string]loadResult{},
		bodySize:        map[int]int{},
		halfRate:        load(9000, 2*time.Millisecond),
		halfRateCeiling: load(9001, time.Millisecond),
	}
	for i, size := range fixedSizes {
		for j, kind := range []string{"ceiling %d", "api %d", "ceiling %d 304", "api %d 304"} {
			r.http[fmt.Sprintf(kind, size)] = load(100000/(i+1)-1000*j, time.Duration(i*4+j)*100*time.Microsecond)
		}
		r.bodySize[size] = 300 * size
	}
	r.fresh.lat, r.fresh.events, r.fresh.rate = lat(3*time.Millisecond), 20000, 5000
	r.fresh.api, r.fresh.cpu, r.fresh.batches, r.fresh.gap = load(8000, time.Millisecond), usage{1.5, 0.4}, 900, 40*time.Millisecond
	for i := range 100 {
		r.revoke.published = append(r.revoke.published, 2*time.Millisecond+time.Duration(i)*50*time.Microsecond)
		r.revoke.applied = append(r.revoke.applied, 300*time.Microsecond+time.Duration(i)*20*time.Microsecond)
	}
	r.revoke.api = load(7000, 3*time.Millisecond)
	return r
}
