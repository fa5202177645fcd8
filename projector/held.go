package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
)

// deadLetterApplied dead-letters, under code, the events applied (or held)
// before trigger that trigger rejects (see readmodel.Result): the events
// other projects sent for a render before trigger registered it, or the
// later creation of a key id whose hash trigger took over. They are read
// back from the stream by sequence. One the stream no longer holds is
// recorded as not stored (see recordFailure) and passed over.
func (p *Projector) deadLetterApplied(ctx context.Context, r run, trigger uint64, seqs []uint64, code, field, reason string) error {
	if len(seqs) == 0 {
		return nil
	}
	var s jetstream.Stream // looked up at the first event not yet dead-lettered
	for _, seq := range seqs {
		done, err := r.dead.handled(ctx, seq, trigger)
		if err != nil {
			return err
		}
		if done {
			continue // a replay: dead-lettered when the render was first registered
		}
		if s == nil {
			if s, err = p.js.Stream(ctx, events.Stream); err != nil {
				p.metrics.NATSErrors.Inc()
				return fmt.Errorf("stream %s: %w", events.Stream, err)
			}
		}
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// Recorded like a copy the dead-letter stream refused, so
			// `sharesd deadletter list` shows it.
			gone := origin{seq: seq}
			if err := p.recordFailure(ctx, r.dead, gone, trigger, code, field, reason,
				"gone_from_stream", "the event is no longer in the stream"); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			p.metrics.NATSErrors.Inc()
			return fmt.Errorf("read rejected event seq %d: %w", seq, err)
		}
		if err := p.deadLetterRaw(ctx, r, m, trigger, code, field, reason); err != nil {
			return err
		}
	}
	return nil
}
