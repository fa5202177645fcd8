// Command sharesd is the read side of Craftkit's share links: a projector
// from NATS JetStream into Redis and the HTTP API that lists a render's
// shares. Run `sharesd help` for its subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "sharesd: %v\n", err)
		os.Exit(1)
	}
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

// environment is what a subcommand may touch of the process.
type environment struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func commands() []command {
	return []command{
		{"serve", "run the projector and the API together", runServe},
		{"projector", "run only the projector (serves /metrics, /healthz, /readyz)", runProjector},
		{"api", "run only the API", runAPI},
		{"dev", "run everything embedded (NATS, Redis, projector, API) with demo data", runDev},
		{"seed", "create the streams if missing and publish the demo project once", runSeed},
		{"rebuild", "rebuild the read model from the stream without downtime (--render <id> for one render)", runRebuild},
		{"verify", "recompute renders from the stream and compare them with Redis; non-zero exit on drift", runVerify},
		{"status", "show stream head, applied position, lag, dead letters, generations and rebuild progress", runStatus},
		{"publish", "publish contract events from a JSON-lines file or stdin, validated first", runPublish},
		{"keys", "mint (keys create) or revoke (keys revoke) API keys", runKeys},
		{"deadletter", "list or replay dead-lettered events (deadletter list|replay)", runDeadletter},
		{"healthcheck", "GET a running sharesd's /healthz (or -url) and fail unless it answers 200: for container healthchecks", runHealthcheck},
	}
}

// run dispatches a subcommand. It is main without the process: tests call
// it with their own args, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	env := &environment{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run(ctx, env, args[1:]); !errors.Is(err, flag.ErrHelp) {
				return err
			}
			return nil // -h printed the flags
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sharesd <subcommand> [flags]\n\nsubcommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `sharesd <subcommand> -h` for its flags; every flag can also be set by the environment variable named in its help.")
}
