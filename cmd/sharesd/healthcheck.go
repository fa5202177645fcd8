package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// runHealthcheck asks a running sharesd whether it is healthy: a GET of
// -url answered 200 within -timeout. It is what container healthchecks
// run, since the image has neither a shell nor curl. Any other answer is an
// error, so the process exits with status 1.
func runHealthcheck(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	target := fs.String("url", healthURL(envOr(env.getenv, "HTTP_ADDR", ":8080")),
		"URL to GET; 200 means healthy (default: /healthz on the port of HTTP_ADDR) (env HTTP_ADDR)")
	timeout := fs.Duration("timeout", 2*time.Second, "longest wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	if u, err := url.Parse(*target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url: got %q, want an absolute http(s) URL such as http://127.0.0.1:8080/healthz", *target)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return errors.New("healthcheck: " + *target + ": " + resp.Status + ": " + string(body))
	}
	fmt.Fprintf(env.stdout, "%s: %s\n", *target, resp.Status)
	return nil
}

// healthURL is the /healthz URL of a server listening on addr, reached over
// loopback whatever interface it listens on.
func healthURL(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		port = "8080"
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
}
