package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// applyBatch takes a decoded batch, dead-letters what is bad and applies the rest
// to r.gen in one Redis round trip, raising the saved position to
// checkpoint (the end of the previous batch) in the same trip. It returns
// the control state and the number of events still pending after the batch.
func (p *Projector) applyBatch(ctx context.Context, r run, batch []delivered, checkpoint uint64) (readmodel.Control, uint64, error) {
	start := time.Now()
	ops := make([]readmodel.Op, 0, len(batch))
	srcs := make([]jetstream.Msg, 0, len(batch))
	var last *jetstream.MsgMetadata
	for _, d := range batch {
		m, md, ev, err := d.msg, d.md, d.ev, d.err
		if d.mdErr != nil {
			return readmodel.Control{}, 0, fmt.Errorf("message metadata: %w", d.mdErr)
		}
		last = md
		seq := md.Sequence.Stream
		var bad *events.DecodeError
		switch {
		case errors.As(err, &bad):
			if err := p.deadLetter(ctx, r, m, seq, bad.Code(), bad.Field, bad.Error()); err != nil {
				return readmodel.Control{}, 0, err
			}
			continue
		case err != nil:
			return readmodel.Control{}, 0, fmt.Errorf("decode seq %d: %w", seq, err)
		}
		ops = append(ops, readmodel.Op{Seq: seq, Time: md.Timestamp, Event: ev})
		srcs = append(srcs, m)
	}

	// The write must not be cut in half by a shutdown: it gets its own
	// deadline instead of the run's context. The deadline is one Redis read
	// timeout, so a write that Redis does not answer is not retried past
	// it: after SIGTERM this write (5s), saving the position (2s) and
	// releasing the lease (1s) fit in the 10s a stopping process has.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	if r.scratch {
		checkpoint = 0
	}
	outcomes, ctl, err := p.store.Apply(actx, r.gen, ops, checkpoint, r.live)
	if err != nil {
		p.metrics.RedisErrors.Inc()
		return readmodel.Control{}, 0, fmt.Errorf("apply batch at seq %d: %w", seqOf(batch[0].msg), err)
	}
	for i, res := range outcomes {
		if err := p.settle(ctx, r, ops[i], srcs[i], res); err != nil {
			return readmodel.Control{}, 0, err
		}
	}
	if err := p.markHandled(ctx, r, last.Sequence.Stream); err != nil {
		return readmodel.Control{}, 0, err
	}
	p.metrics.BatchSeconds.Observe(time.Since(start).Seconds())
	p.metrics.BatchSize.Observe(float64(len(batch)))
	p.metrics.Position.Set(float64(last.Sequence.Stream))
	p.metrics.LastAppliedAge.SetToCurrentTime()
	p.metrics.LagEvents.Set(float64(last.NumPending))
	if last.NumPending == 0 {
		p.metrics.LagSeconds.Set(0)
	} else {
		p.metrics.LagSeconds.Set(time.Since(last.Timestamp).Seconds())
	}
	p.setApplied(r.gen, last.Sequence.Stream, last.NumPending)
	return ctl, last.NumPending, nil
}

// settle counts what applying op did and dead-letters what it rejected:
// the event itself (another project's, or a key hash another key owns),
// and the other projects' events that were held for a render op registered.
// A redelivery dead-letters again: the copy may not have been published
// before a crash, and the dead-letter stream keeps one copy (see deadLetter).
func (p *Projector) settle(ctx context.Context, r run, op readmodel.Op, src jetstream.Msg, res readmodel.Result) error {
	o := res.Outcome
	p.metrics.Applied.WithLabelValues(string(op.Event.Type), o.String()).Inc()
	if o == readmodel.Stale || o == readmodel.StaleMismatch {
		p.metrics.Redeliveries.Inc()
	}
	switch o {
	case readmodel.Mismatch, readmodel.StaleMismatch:
		reason := "projectId " + op.Event.ProjectID + " is not the project of the " + entityWord(op.Event.Type)
		if err := p.deadLetter(ctx, r, src, op.Seq, events.CodeProjectMismatch, "projectId", reason); err != nil {
			return err
		}
	case readmodel.HashTaken:
		const reason = "keyHash is already registered to another API key id"
		if err := p.deadLetter(ctx, r, src, op.Seq, events.CodeKeyHashTaken, "data.keyHash", reason); err != nil {
			return err
		}
	}
	return p.deadLetterHeld(ctx, r, op.Seq, res.Foreign)
}

func entityWord(t events.Type) string {
	if t.RenderScoped() {
		return "render"
	}
	return "API key"
}

// applyTimeout bounds one batch's write to Redis.
const applyTimeout = 5 * time.Second
