package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLoad checks what the load generator counts, against a server that
// answers every request 200 with a fixed body.
func TestLoad(t *testing.T) {
	t.Parallel()
	const body = "0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	reqs := [][]byte{request(addr, "/a"), request(addr, "/b")}
	ctx := context.Background()
	noCPU := func() cpuClock { return cpuClock{} }

	t.Run("closed loop counts each measured answer and its body", func(t *testing.T) {
		r, err := closedLoop(ctx, addr, reqs, 200, 3, 20*time.Millisecond, 100*time.Millisecond, noCPU)
		if err != nil {
			t.Fatal(err)
		}
		if r.requests == 0 || r.errors != 0 || len(r.lat) != r.requests || r.bytes != int64(r.requests*len(body)) {
			t.Fatalf("requests %d, errors %d, latencies %d, bytes %d; want some requests, no errors, one latency and %d bytes each",
				r.requests, r.errors, len(r.lat), r.bytes, len(body))
		}
	})
	t.Run("closed loop counts an unexpected status as an error", func(t *testing.T) {
		r, err := closedLoop(ctx, addr, reqs, 304, 2, 0, 50*time.Millisecond, noCPU)
		if err != nil {
			t.Fatal(err)
		}
		if r.requests == 0 || r.errors != r.requests {
			t.Fatalf("requests %d, errors %d; want every answer an error", r.requests, r.errors)
		}
	})
	t.Run("open loop sends rate × duration requests", func(t *testing.T) {
		r, err := openLoop(ctx, addr, reqs, 200, 4, 1000, 80*time.Millisecond, noCPU)
		if err != nil {
			t.Fatal(err)
		}
		if r.requests != 80 || r.errors != 0 || len(r.lat) != 80 {
			t.Fatalf("requests %d, errors %d, latencies %d; want 80, 0, 80", r.requests, r.errors, len(r.lat))
		}
		for i := 1; i < len(r.lat); i++ {
			if r.lat[i] < r.lat[i-1] {
				t.Fatal("latencies are not sorted")
			}
		}
	})
}
