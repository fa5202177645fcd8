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
//
// Its steps keep the order the exactly-once argument (doc.go) and the
// dead-letter mark (deadletter_mark.go) rely on: the dead letters of events
// that do not decode, the write, the dead letters of what the write
// rejected, and only then the mark up to the batch's end.
func (p *Projector) applyBatch(ctx context.Context, r run, batch []delivered, checkpoint uint64) (readmodel.Control, uint64, error) {
	start := time.Now()
	ops, srcs, err := p.decoded(ctx, r, batch)
	if err != nil {
		return readmodel.Control{}, 0, err
	}
	outcomes, ctl, err := p.writeBatch(ctx, r, ops, checkpoint)
	if err != nil {
		return readmodel.Control{}, 0, fmt.Errorf("apply batch at seq %d: %w", seqOf(batch[0].msg), err)
	}
	for i, res := range outcomes {
		if err := p.settle(ctx, r, ops[i], srcs[i], res); err != nil {
			return readmodel.Control{}, 0, err
		}
	}
	last := batch[len(batch)-1].md // decoded checked every message's
	if err := p.markHandled(ctx, r, r.parts.markCap(last.Sequence.Stream, ctl, r.gen)); err != nil {
		return readmodel.Control{}, 0, err
	}
	p.observeBatch(start, len(batch), last)
	p.setApplied(r.gen, last.Sequence.Stream, last.NumPending)
	return ctl, last.NumPending, nil
}

// decoded returns the batch's events as ops, each with the message it came
// from, after dead-lettering those that did not decode. A message without
// metadata or an event that failed to decode for another reason ends the
// run.
func (p *Projector) decoded(ctx context.Context, r run, batch []delivered) ([]readmodel.Op, []jetstream.Msg, error) {
	ops := make([]readmodel.Op, 0, len(batch))
	srcs := make([]jetstream.Msg, 0, len(batch))
	for _, d := range batch {
		if d.mdErr != nil {
			return nil, nil, fmt.Errorf("message metadata: %w", d.mdErr)
		}
		if d.skip {
			continue
		}
		seq := d.md.Sequence.Stream
		var bad *events.DecodeError
		switch {
		case errors.As(d.err, &bad):
			if err := p.deadLetter(ctx, r, d.msg, seq, bad.Code(), bad.Field, bad.Error()); err != nil {
				return nil, nil, err
			}
			continue
		case d.err != nil:
			return nil, nil, fmt.Errorf("decode seq %d: %w", seq, d.err)
		}
		ops = append(ops, readmodel.Op{Seq: seq, Time: d.md.Timestamp, Event: d.ev})
		srcs = append(srcs, d.msg)
	}
	return ops, srcs, nil
}

// writeBatch applies ops to r.gen and saves checkpoint in one round trip
// (a scratch run saves none).
//
// The write must not be cut in half by a shutdown: it gets its own
// deadline instead of the run's context. The deadline is one Redis read
// timeout, so a write that Redis does not answer is not retried past it:
// after SIGTERM this write (5s), saving the position (2s) and releasing the
// lease (1s) fit in the 10s a stopping process has.
func (p *Projector) writeBatch(ctx context.Context, r run, ops []readmodel.Op, checkpoint uint64) ([]readmodel.Result, readmodel.Control, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	cp := r.checkpoint(checkpoint)
	if r.scratch {
		cp = readmodel.Checkpoint{}
	}
	outcomes, ctl, err := p.store.ApplyParts(actx, r.gen, ops, cp, r.live)
	if err != nil {
		p.metrics.RedisErrors.Inc()
	}
	return outcomes, ctl, err
}

// observeBatch updates the batch, position and lag metrics after a batch
// ending at last was applied.
func (p *Projector) observeBatch(start time.Time, size int, last *jetstream.MsgMetadata) {
	p.metrics.BatchSeconds.Observe(time.Since(start).Seconds())
	p.metrics.BatchSize.Observe(float64(size))
	p.metrics.Position.Set(float64(last.Sequence.Stream))
	p.metrics.LastApplied.SetToCurrentTime()
	p.metrics.LagEvents.Set(float64(last.NumPending))
	if last.NumPending == 0 {
		p.metrics.LagSeconds.Set(0)
	} else {
		p.metrics.LagSeconds.Set(time.Since(last.Timestamp).Seconds())
	}
}

// settle counts what applying op did and dead-letters what it rejected:
// the event itself (another project's, or a key hash another key owns),
// and the events applied before it that it rejects (see readmodel.Result):
// other projects' events that were held for a render op registered, or the
// later creation of a key id whose hash op took over.
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
		if err := p.deadLetter(ctx, r, src, op.Seq, events.CodeKeyHashTaken, "data.keyHash", hashTakenReason); err != nil {
			return err
		}
	}
	if op.Event.Type == events.TypeAPIKeyCreated {
		return p.deadLetterApplied(ctx, r, op.Seq, res.Rejects, events.CodeKeyHashTaken, "data.keyHash", hashTakenReason)
	}
	return p.deadLetterApplied(ctx, r, op.Seq, res.Rejects, events.CodeProjectMismatch, "projectId", heldReason)
}

const (
	hashTakenReason = "keyHash is already registered to another API key id"
	heldReason      = "projectId is not the project that registered the render"
)

func entityWord(t events.Type) string {
	if t.RenderScoped() {
		return "render"
	}
	return "API key"
}

// applyTimeout bounds one batch's write to Redis.
const applyTimeout = 5 * time.Second
