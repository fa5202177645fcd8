// Command sharesbench measures sharesd against the engines under it, on
// one machine in one run: how fast JetStream alone delivers the stream, how
// fast Redis alone absorbs the same writes through the project's own write
// path, and how fast Go's HTTP server alone sends the same bodies; then the
// projector's catch-up and live freshness, the API's throughput and latency
// on renders of 1, 10, 100 and 1,000 shares, and Redis's memory per share,
// per render and per view. It prints one table, each figure next to its
// ceiling. It needs nothing but the project's set-up: it starts an embedded
// NATS server and a redis-server child unless given -nats-url/-redis-url.
//
//	go run ./cmd/sharesbench            # the full run: about 8 minutes on 2 cores
//	go run ./cmd/sharesbench -quick     # a small run: about 2 minutes
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "sharesbench: %v\n", err)
		os.Exit(1)
	}
}
