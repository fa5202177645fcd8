package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/cmd/internal/local"
	"github.com/craftkit/sharesd/events"
)

// runDev runs the whole stack in one process: an embedded NATS server with
// JetStream (its store under -data-dir survives restarts), a redis-server
// child (or an in-process Redis when none is installed; the read model is
// rebuilt from the stream on every start), the projector and the API. It
// publishes the demo project once and prints a curl that lists it.
func runDev(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("dev", env, &cfg, "http", "api", "projector")
	dataDir := fs.String("data-dir", envOr(env.getenv, "DATA_DIR", ".sharesd-dev"), "where the embedded NATS keeps the stream (env DATA_DIR)")
	natsListen := fs.String("nats-listen", envOr(env.getenv, "NATS_LISTEN", "127.0.0.1:-1"), "address of the embedded NATS server; port -1 picks a free one (env NATS_LISTEN)")
	cfg.DedupeHorizon = 24 * time.Hour
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}
	logger := newLogger(cfg, env.stderr)

	ns, err := startNATS(*natsListen, filepath.Join(*dataDir, "nats"))
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	cfg.NATSURL = ns.ClientURL()

	redisURL, stopRedis, err := startRedis(filepath.Join(*dataDir, "redis"), logger)
	if err != nil {
		return err
	}
	defer stopRedis()
	cfg.RedisURL = redisURL

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("-http-addr / HTTP_ADDR: %w (another sharesd dev running? pick another with -http-addr :8081)", err)
	}
	return serve(ctx, logger, cfg, ln, modeAll, func(ctx context.Context) error {
		announceDemo(ctx, env.stdout, logger, cfg, ln.Addr().String())
		<-ctx.Done() // the demo is printed; the stack runs on
		return nil
	})
}

func startNATS(listen, storeDir string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("-nats-listen / NATS_LISTEN: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("-nats-listen / NATS_LISTEN: port %q: %w", portStr, err)
	}
	return local.NATS(host, port, storeDir)
}

// startRedis starts redis-server on a free loopback port without
// persistence, or an in-process Redis when redis-server is not installed.
func startRedis(dir string, logger *slog.Logger) (string, func(), error) {
	r, err := local.StartRedis(dir)
	if errors.Is(err, local.ErrNoRedis) {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return "", nil, fmt.Errorf("in-process redis: %w", err)
		}
		logger.Warn("redis-server not found: using an in-process Redis (install redis-server for the real thing)")
		return "redis://" + mr.Addr(), mr.Close, nil
	}
	if err != nil {
		return "", nil, err
	}
	return r.URL, r.Stop, nil
}

// announceDemo seeds the demo project once the stack is up, waits until
// the API lists it and prints the curl that does.
func announceDemo(ctx context.Context, w io.Writer, logger *slog.Logger, cfg Config, addr string) {
	nc, js, err := connectNATS(cfg.NATSURL, logger, false)
	if err != nil {
		logger.Error("seed demo", "err", err)
		return
	}
	defer nc.Close()
	var added bool
	seeded := func() (err error) {
		added, err = seedDemo(ctx, js)
		return err
	}
	if !retry(ctx, 200*time.Millisecond, seeded) { // until the projector has created the stream
		return
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "::" || host == "0.0.0.0" || host == "") {
		addr = "localhost:" + port
	}
	var last uint64 // the list waits for the whole demo
	if !retry(ctx, 100*time.Millisecond, func() (err error) { last, err = demoEnd(ctx, js); return err }) {
		return
	}
	if !retry(ctx, 100*time.Millisecond, func() error { return demoListed(ctx, addr, last) }) {
		return
	}
	printSeed(w, added)
	fmt.Fprintf(w, "\nsharesd dev is up. Try:\n\n  %s\n\nand, from another shell, against the servers dev started:\n\n  %s\n\n", demoCurl(addr), devStatusLine(cfg))
	fmt.Fprintf(w, "NATS:  %s\nRedis: %s\n(Ctrl-C stops)\n", cfg.NATSURL, cfg.RedisURL)
}

// demoEnd returns the stream sequence of the demo render's last event.
func demoEnd(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, subj := range events.RenderSubjects(demoRender) {
		m, err := s.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return 0, err
		default:
			last = max(last, m.Sequence)
		}
	}
	return last, nil
}

// demoListed asks the API at addr for the demo render's shares, as the
// printed curl does, and returns nil once it answers 200 with everything
// up to stream sequence minSeq applied to the demo render.
func demoListed(ctx context.Context, addr string, minSeq uint64) error {
	url := fmt.Sprintf("http://%s/v1/renders/%s/shares?minSeq=%d", addr, demoRender, minSeq)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+demoKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("demo render: %s", resp.Status)
	}
	if seq, _ := strconv.ParseUint(resp.Header.Get("X-Projection-Seq"), 10, 64); seq < minSeq {
		return fmt.Errorf("demo render: projected up to %d of %d", seq, minSeq)
	}
	return nil
}

// retry calls f at once and then on every tick of a ticker of period every
// until f returns nil, and reports whether it did before ctx ended.
func retry(ctx context.Context, every time.Duration, f func() error) bool {
	t := time.NewTicker(every)
	defer t.Stop()
	for f() != nil {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// devStatusLine is the `sharesd status` that reads dev's own NATS and
// Redis; verify and rebuild take the same flags.
func devStatusLine(cfg Config) string {
	return "sharesd status -nats-url " + cfg.NATSURL + " -redis-url " + cfg.RedisURL
}
