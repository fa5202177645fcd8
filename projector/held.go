package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
)

// deadLetterHeld dead-letters the events that other projects sent for a
// render before trigger registered it to its project (see
// readmodel.Result): they are read back from the stream by sequence. One
// the stream no longer holds is recorded as not stored (see recordFailure)
// and passed over.
func (p *Projector) deadLetterHeld(ctx context.Context, r run, trigger uint64, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	var s jetstream.Stream // looked up at the first event not yet dead-lettered
	const reason = "projectId is not the project that registered the render"
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
			if err := p.recordFailure(ctx, r.dead, gone, trigger, events.CodeProjectMismatch, "projectId", reason,
				"gone_from_stream", "the event is no longer in the stream"); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			p.metrics.NATSErrors.Inc()
			return fmt.Errorf("read held event seq %d: %w", seq, err)
		}
		if err := p.deadLetterRaw(ctx, r, m, trigger, events.CodeProjectMismatch, "projectId", reason); err != nil {
			return err
		}
	}
	return nil
}
