package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/craftkit/sharesd/events/polltest"
)

var (
	curlLine   = regexp.MustCompile(`curl -s (http://\S+) -H 'Authorization: Bearer (\S+)'`)
	statusLine = regexp.MustCompile(`(?m)^\s*sharesd (status .*)$`)
)

// TestDevWithoutRedisServer runs `sharesd dev` as a newcomer on a machine
// with Go and nothing else would (no redis-server on PATH: the in-process
// Redis), follows the curl it prints, and checks that a restart on the same
// data directory publishes no duplicate demo data.
func TestDevWithoutRedisServer(t *testing.T) {
	// Not parallel: it empties PATH for the process.
	t.Setenv("PATH", t.TempDir())
	if _, err := exec.LookPath("redis-server"); err == nil {
		t.Fatal("redis-server still found on an empty PATH")
	}
	dataDir := t.TempDir()
	for start := 1; start <= 2; start++ {
		out := devOnce(t, dataDir)
		if want := []string{"demo project published", "demo project already in the stream"}[start-1]; !strings.Contains(out, want) {
			t.Errorf("start %d: output lacks %q:\n%s", start, want, out)
		}
	}
}

// devOnce runs dev until its curl works, checks the demo list through it,
// stops it and returns what it printed.
func devOnce(t *testing.T, dataDir string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout := &polltest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "-http-addr", "127.0.0.1:0", "-data-dir", dataDir},
			func(string) string { return "" }, nil, stdout, io.Discard)
	}()
	var url, key string
	polltest.WaitFor(t, 30*time.Second, func() error {
		m := curlLine.FindStringSubmatch(stdout.String())
		if m == nil {
			return fmt.Errorf("no curl printed yet: %q", stdout.String())
		}
		url, key = m[1], m[2]
		return nil
	})
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	shares := decodeShares(t, httpReply{status: resp.StatusCode, body: body})
	var got []string
	for _, s := range shares {
		got = append(got, fmt.Sprintf("%s:%d", s.ID, s.ClickCount))
	}
	if want := "share-3:0 share-2:1 share-1:3"; strings.Join(got, " ") != want {
		t.Errorf("the printed curl lists %v, want %s", got, want)
	}
	checkDevStatus(t, stdout.String())
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dev did not stop within 15s")
	}
	return stdout.String()
}

// checkDevStatus runs the `sharesd status` line dev printed, as a newcomer
// would from another shell (no environment), and checks that it read dev's
// own servers: the demo events in the stream, an active generation that has
// applied them and the projector's lease.
func checkDevStatus(t *testing.T, out string) {
	t.Helper()
	m := statusLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dev printed no `sharesd status` line:\n%s", out)
	}
	var stdout strings.Builder
	args := append(strings.Fields(m[1]), "-json")
	if err := run(context.Background(), args, func(string) string { return "" }, nil, &stdout, io.Discard); err != nil {
		t.Fatalf("sharesd %s: %v", strings.Join(args, " "), err)
	}
	var rep struct {
		Stream    struct{ LastSeq uint64 }
		Active    *struct{ Position uint64 }
		LeaseHeld bool `json:"projectorLeaseHeld"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatalf("status -json: %v\n%s", err, stdout.String())
	}
	if rep.Stream.LastSeq == 0 || rep.Active == nil || !rep.LeaseHeld {
		t.Errorf("the printed status line reads a stream at %d, active generation %+v, lease held %v: want dev's stream, generation and projector\n%s",
			rep.Stream.LastSeq, rep.Active, rep.LeaseHeld, stdout.String())
	}
}
