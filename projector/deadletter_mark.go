package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// This file holds what the projector remembers of dead letters, in NATS
// rather than Redis, so a read model rebuilt from nothing (FLUSHALL, a
// restart without persistence, `sharesd rebuild`) does not dead-letter the
// same bad events again.
//
// The DeadLetterBucket holds, per incarnation of the CRAFTKIT stream (its
// creation time in Unix nanoseconds, C):
//
//	mark.C        S: every bad event handled at a trigger sequence ≤ S is in
//	              the dead-letter stream or recorded (raised after each batch
//	              that dead-lettered something)
//	failed.C.SEQ  a Failure: the event at SEQ, which the dead-letter stream
//	              refused even as a headers-only copy
//
// A crash between a batch's dead letters and raising the mark is covered by
// the dead letters themselves: the newest ones carry their trigger
// sequence, and a run skips those above the mark (tailScan).

// tailScan bounds how many of the dead-letter stream's newest messages a run
// reads at its start.
const tailScan = 4096

// deadLetters is what a run knows of the dead letters handled on the
// current incarnation of the stream. A nil *deadLetters knows nothing and
// remembers nothing.
type deadLetters struct {
	kv      jetstream.KeyValue // nil when the bucket cannot be used
	created time.Time          // the stream incarnation's creation time
	maxSize int32              // the dead-letter stream's MaxMsgSize (≤ 0: none)

	mark   uint64          // every bad event handled at a trigger at or below it
	stored uint64          // the mark as the bucket holds it
	rev    uint64          // its revision, 0 when it has none
	tail   map[uint64]bool // origin sequences dead-lettered at a trigger above the mark

	fresh bool // the mark was read again during this batch
	dirty bool // this batch dead-lettered something: raise the mark after it
}

// loadDeadLetters reads what earlier runs dead-lettered on the stream as it
// is now: the bucket's mark, the newest dead letters above it, and the
// positions ctl records (every bad event at or below a generation's saved
// position was handled before it was saved).
func (p *Projector) loadDeadLetters(ctx context.Context, ctl readmodel.Control) (*deadLetters, error) {
	info, err := p.streamInfo(ctx)
	if err != nil {
		return nil, err
	}
	d := &deadLetters{created: info.Created, mark: handledBy(ctl, streamID(info)), tail: map[uint64]bool{}}
	if d.kv, err = p.deadLetterBucket(ctx); err != nil {
		return nil, err
	}
	if err := d.reload(ctx); err != nil {
		return nil, err
	}
	s, err := p.js.Stream(ctx, events.DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return d, nil // publishing fails, transiently, until it is created
	}
	if err != nil {
		p.metrics.NATSErrors.Inc()
		return nil, fmt.Errorf("stream %s: %w", events.DeadLetterStream, err)
	}
	d.maxSize = s.CachedInfo().Config.MaxMsgSize
	if err := d.scanTail(ctx, s); err != nil {
		p.metrics.NATSErrors.Inc()
		return nil, err
	}
	return d, nil
}

// deadLetterBucket opens the DeadLetterBucket, creating it when it is
// missing. When NATS refuses it for good (limits, permissions) it logs why
// and returns nil: dead-lettering goes on, with less memory.
func (p *Projector) deadLetterBucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := p.js.KeyValue(ctx, DeadLetterBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = p.js.CreateKeyValue(ctx, DeadLetterBucketConfig())
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = p.js.KeyValue(ctx, DeadLetterBucket)
		}
	}
	if err == nil {
		return kv, nil
	}
	if _, ok := refusal(err); ok {
		p.logger.ErrorContext(ctx, "dead-letter bucket unavailable: a rebuild may dead-letter old bad events again, and one the dead-letter stream refuses is only logged",
			"bucket", DeadLetterBucket, "err", err)
		return nil, nil
	}
	p.metrics.NATSErrors.Inc()
	return nil, fmt.Errorf("bucket %s: %w", DeadLetterBucket, err)
}

func (d *deadLetters) nanos() string { return strconv.FormatInt(d.created.UnixNano(), 10) }

func (d *deadLetters) markKey() string { return "mark." + d.nanos() }

// createdID is the stream incarnation as HeaderStreamCreated spells it.
func (d *deadLetters) createdID() string {
	if d == nil {
		return ""
	}
	return d.created.UTC().Format(time.RFC3339Nano)
}

// reload reads the mark from the bucket.
func (d *deadLetters) reload(ctx context.Context) error {
	if d.kv == nil {
		return nil
	}
	e, err := d.kv.Get(ctx, d.markKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dead-letter mark: %w", err)
	}
	d.rev = e.Revision()
	d.stored, _ = strconv.ParseUint(string(e.Value()), 10, 64) // garbage counts as 0
	d.mark = max(d.mark, d.stored)
	return nil
}

// scanTail reads the dead-letter stream backwards from its end while its
// messages belong to this incarnation and were published at triggers
// above the mark: published before a crash kept their batch from raising
// it.
func (d *deadLetters) scanTail(ctx context.Context, s jetstream.Stream) error {
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return nil
	}
	created := d.createdID()
	for seq, n := st.LastSeq, 0; seq >= max(st.FirstSeq, 1) && n < tailScan; seq, n = seq-1, n+1 {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted by a replay
		}
		if err != nil {
			return fmt.Errorf("dead letter %d: %w", seq, err)
		}
		trigger, err := strconv.ParseUint(m.Header.Get(HeaderTrigger), 10, 64)
		if err != nil || m.Header.Get(HeaderStreamCreated) != created || trigger <= d.mark {
			return nil
		}
		if orig, err := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64); err == nil {
			d.tail[orig] = true
		}
	}
	return nil
}

// handled reports whether the event at seq, handled at trigger, was already
// dead-lettered (or recorded). The first time in a batch that the answer is
// not already known, the mark is read again: a run beside this one (a
// rebuild, the live projector) may have raised it.
func (d *deadLetters) handled(ctx context.Context, seq, trigger uint64) (bool, error) {
	if d == nil {
		return false, nil
	}
	if trigger <= d.mark || d.tail[seq] {
		return true, nil
	}
	if d.kv == nil || d.fresh {
		return false, nil
	}
	if err := d.reload(ctx); err != nil {
		return false, err
	}
	d.fresh = true
	return trigger <= d.mark, nil
}

// touch notes that this batch dead-lettered something.
func (d *deadLetters) touch() {
	if d != nil {
		d.dirty = true
	}
}

// markHandled raises the mark to end, the batch's last sequence, once every
// dead letter of the batch is published or recorded. A run over part of the
// stream (a single render) never raises it: it has not seen the rest.
func (p *Projector) markHandled(ctx context.Context, r run, end uint64) error {
	d := r.dead
	if d == nil {
		return nil
	}
	dirty := d.dirty
	d.dirty, d.fresh = false, false
	if !dirty || r.filter != nil || d.kv == nil {
		return nil
	}
	for d.stored < end {
		rev, err := d.kv.Update(ctx, d.markKey(), []byte(strconv.FormatUint(end, 10)), d.rev)
		switch {
		case err == nil:
			d.stored, d.rev, d.mark = end, rev, max(d.mark, end)
			return nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			if err := d.reload(ctx); err != nil { // raised meanwhile by another run: read it and retry
				return err
			}
		default:
			if _, ok := refusal(err); ok {
				p.logger.ErrorContext(ctx, "cannot raise the dead-letter mark: a rebuild may dead-letter these events again",
					"bucket", DeadLetterBucket, "mark", end, "err", err)
				return nil
			}
			p.metrics.NATSErrors.Inc()
			return fmt.Errorf("raise dead-letter mark to %d: %w", end, err)
		}
	}
	d.mark = max(d.mark, d.stored)
	return nil
}

// A Failure is a bad event that the dead-letter stream refused even as a
// headers-only copy: it is recorded in the DeadLetterBucket instead, and
// passed over. Its body stays in the CRAFTKIT stream at Seq.
type Failure struct {
	Stream   string    `json:"stream"` // the CRAFTKIT incarnation's creation time (RFC 3339)
	Seq      uint64    `json:"seq"`
	Subject  string    `json:"subject"`
	Time     time.Time `json:"time"`
	MsgID    string    `json:"msgId,omitempty"` // escaped (see HeaderOriginalPrefix), at most 1 KiB
	Trigger  uint64    `json:"trigger"`
	Code     string    `json:"code"`
	Field    string    `json:"field"`
	Reason   string    `json:"reason"`
	Size     int       `json:"size"`    // body bytes
	Refusal  string    `json:"refusal"` // what the stream answered
	Recorded time.Time `json:"recorded"`
}

// recordFailure records an event the dead-letter stream refused for good,
// logs it, counts it under label and passes it over. Only a transient
// failure to record it returns an error.
func (p *Projector) recordFailure(ctx context.Context, d *deadLetters, o origin, trigger uint64, code, field, reason, label, refused string) error {
	f := Failure{
		Stream: d.createdID(), Seq: o.seq, Subject: o.subject, Time: o.time.UTC(),
		MsgID: clip(escape(o.header.Get(jetstream.MsgIDHeader), false), 1024), Trigger: trigger,
		Code: code, Field: clip(field, maxField), Reason: clip(reason, maxReason), Size: len(o.data),
		Refusal: clip(refused, 2*maxReason), Recorded: time.Now().UTC(),
	}
	where := "only in this log: the dead-letter bucket is unavailable"
	if d != nil && d.kv != nil {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		_, err = d.kv.Put(ctx, "failed."+d.nanos()+"."+strconv.FormatUint(o.seq, 10), b)
		switch _, permanent := refusal(err); {
		case err == nil:
			where = "recorded in bucket " + DeadLetterBucket
		case !permanent:
			p.metrics.NATSErrors.Inc()
			return fmt.Errorf("record dead letter seq %d: %w", o.seq, err)
		default:
			where = "only in this log: the dead-letter bucket refused it: " + err.Error()
		}
	}
	d.touch()
	p.metrics.DeadLetterFailed.WithLabelValues(label).Inc()
	p.logger.ErrorContext(ctx, "event NOT dead-lettered: the dead-letter stream refused it even without its body; passed over",
		"stream_seq", o.seq, "subject", o.subject, "trigger_seq", trigger, "code", code, "field", f.Field, "reason", f.Reason,
		"refusal", label, "err", f.Refusal, "record", where)
	return nil
}

// Failures returns the recorded failures of every incarnation of the
// stream, oldest incarnation and sequence first; none when the bucket does
// not exist.
func Failures(ctx context.Context, js jetstream.JetStream) ([]Failure, error) {
	kv, err := js.KeyValue(ctx, DeadLetterBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", DeadLetterBucket, err)
	}
	lister, err := kv.ListKeysFiltered(ctx, "failed.>")
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", DeadLetterBucket, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Failure
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bucket %s key %s: %w", DeadLetterBucket, k, err)
		}
		var f Failure
		if err := json.Unmarshal(e.Value(), &f); err != nil {
			return nil, fmt.Errorf("bucket %s key %s: %w", DeadLetterBucket, k, err)
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := strings.Compare(out[i].Stream, out[j].Stream); c != 0 {
			return c < 0
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}
