package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
)

// drainStream is the JetStream ceiling: an ordered consumer, configured as
// the projector configures its own (same pull buffer), reads the whole
// stream and does nothing with the messages. It returns messages/s.
func drainStream(ctx context.Context, js jetstream.JetStream, lastSeq uint64, batchSize int, progress io.Writer) (float64, error) {
	cons, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, fmt.Errorf("ordered consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * batchSize))
	if err != nil {
		return 0, fmt.Errorf("messages: %w", err)
	}
	defer it.Stop()
	tick := newTicker(progress, "jetstream drain", int(lastSeq))
	start := time.Now()
	var n uint64
	for n < lastSeq {
		m, err := it.Next()
		if err != nil {
			return 0, fmt.Errorf("drain after %d messages: %w", n, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return 0, err
		}
		n = md.Sequence.Stream
		if n%4096 == 0 {
			tick.add(4096)
		}
	}
	rate := float64(lastSeq) / time.Since(start).Seconds()
	tick.n = int(lastSeq)
	tick.done()
	return rate, nil
}
