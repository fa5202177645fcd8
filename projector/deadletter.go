package projector

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
)

// Headers of a dead letter. They are the copy's only headers besides the
// Nats-Msg-Id the projector sets: the original's own headers are kept under
// HeaderOriginalPrefix and never sent again as NATS headers, so none of them
// (Nats-Expected-Stream, Nats-Rollup, Nats-TTL, …) can steer or refuse the
// copy.
const (
	HeaderReason  = "Sharesd-Reason"
	HeaderCode    = "Sharesd-Reason-Code" // an events.Code* reason code, also the metric label
	HeaderField   = "Sharesd-Field"
	HeaderSubject = "Sharesd-Original-Subject"
	HeaderStream  = "Sharesd-Original-Stream"
	HeaderSeq     = "Sharesd-Original-Sequence"
	HeaderMsgID   = "Sharesd-Original-Msg-Id"
	HeaderTime    = "Sharesd-Original-Time"

	// HeaderStreamCreated is the creation time of the stream incarnation
	// the original belongs to.
	HeaderStreamCreated = "Sharesd-Original-Stream-Created"
	// HeaderTrigger is the stream sequence of the event being handled when
	// the dead letter was published: the original's own, or a later event
	// that settled it (a render's registration).
	HeaderTrigger = "Sharesd-Trigger-Sequence"
	// HeaderTruncated says what the copy lacks: "body N" (the original body
	// had N bytes and was cut, or left out of a headers-only copy) and/or
	// "headers N" (N original header values left out).
	HeaderTruncated = "Sharesd-Truncated"
	// HeaderRefused is set on a headers-only copy: why the dead-letter stream
	// refused the full one.
	HeaderRefused = "Sharesd-Copy-Refused"
	// HeaderOriginalPrefix prefixes each original header's name. Names and
	// values are percent-encoded: '%' and every byte outside printable
	// ASCII (and, in names, every byte NATS does not allow in one) is %XX;
	// a value's leading and trailing spaces too. The original Nats-Msg-Id
	// is under HeaderMsgID instead.
	HeaderOriginalPrefix = "Sharesd-Original-Header-"
)

// Bounds of what the projector writes itself into a dead letter's headers.
const (
	maxReason = 1024
	maxField  = 256
	// maxDLSubject bounds the dead-letter subject, so that the publish's
	// protocol line stays well inside the server's max_control_line
	// (4 KiB by default) whatever the original subject's length.
	maxDLSubject = 1024
	// maxHeaderBlock is JetStream's limit on a stored message's headers.
	maxHeaderBlock = 65535
	// truncatedRoom is kept free for HeaderTruncated at its longest.
	truncatedRoom = len(HeaderTruncated) + len(": body 18446744073709551615, headers 18446744073709551615\r\n")
)

// origin is the message a dead letter copies, whether it came from the
// consumer (jetstream.Msg) or was fetched by sequence (RawStreamMsg).
type origin struct {
	subject string
	seq     uint64
	time    time.Time // the stream's timestamp; zero when unknown
	header  nats.Header
	data    []byte
}

// deadLetter copies a message of the consumer that cannot be applied to
// the dead-letter stream; it is handled at its own sequence seq. See
// deadLetterOrigin.
func (p *Projector) deadLetter(ctx context.Context, r run, m jetstream.Msg, seq uint64, code, field, reason string) error {
	o := origin{subject: m.Subject(), seq: seq, header: m.Headers(), data: m.Data()}
	if md, err := m.Metadata(); err == nil {
		o.time = md.Timestamp
	}
	return p.deadLetterOrigin(ctx, r, o, seq, code, field, reason)
}

// deadLetterRaw copies a message fetched from the stream by sequence to the
// dead-letter stream while the run handles the event at sequence trigger
// (which may come after it). See deadLetterOrigin.
func (p *Projector) deadLetterRaw(ctx context.Context, r run, m *jetstream.RawStreamMsg, trigger uint64, code, field, reason string) error {
	o := origin{subject: m.Subject, seq: m.Sequence, time: m.Time, header: m.Header, data: m.Data}
	return p.deadLetterOrigin(ctx, r, o, trigger, code, field, reason)
}

// deadLetterOrigin copies o to the dead-letter stream with headers saying
// why and where it came from, logs it once and counts it. What an earlier
// run already handled (r.dead) is skipped.
//
// Nothing in o can make it fail for good. A copy too big for the
// connection or the stream is cut to fit. When the stream refuses the copy
// for good (its rules, its limits), a headers-only copy is tried, and when
// that is refused too the event is recorded in the DeadLetterBucket and
// passed over. Only a transient failure (NATS unreachable, a timeout, no
// leader) returns an error, so the run retries.
func (p *Projector) deadLetterOrigin(ctx context.Context, r run, o origin, trigger uint64, code, field, reason string) error {
	d := r.dead
	done, err := d.handled(ctx, o.seq, trigger)
	if err != nil {
		p.metrics.NATSErrors.Inc()
		return fmt.Errorf("dead-letter seq %d: %w", o.seq, err)
	}
	if done {
		return nil
	}
	limit := p.copyLimit(d)
	refused, err := p.publishCopy(ctx, d, newCopy(o, d.createdID(), trigger, code, field, reason, limit, false), o, code, field, reason)
	if refused == "" {
		return err
	}
	minimal := newCopy(o, d.createdID(), trigger, code, field, reason, limit, true)
	minimal.Header.Set(HeaderRefused, clip(clean(refusalText(err)), maxReason))
	label, err2 := p.publishCopy(ctx, d, minimal, o, code, field, reason)
	if label == "" {
		return err2
	}
	return p.recordFailure(ctx, d, o, trigger, code, field, reason, label, refusalText(err)+"; without its body: "+refusalText(err2))
}

// publishCopy publishes a dead letter. It returns the refusal's label and
// the error when the stream refused it for good, else "" and nil on
// success or a transient error.
func (p *Projector) publishCopy(ctx context.Context, d *deadLetters, out *nats.Msg, o origin, code, field, reason string) (string, error) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ack, err := p.js.PublishMsg(pctx, out)
	if err != nil {
		if label, ok := refusal(err); ok {
			p.logger.WarnContext(ctx, "dead-letter stream refused a copy", "stream_seq", o.seq, "refusal", label, "err", err)
			return label, err
		}
		p.metrics.NATSErrors.Inc()
		return "", fmt.Errorf("dead-letter seq %d: %w", o.seq, err)
	}
	d.touch()
	if ack.Duplicate {
		return "", nil // a redelivery of one already dead-lettered: logged and counted then
	}
	p.metrics.DeadLettered.WithLabelValues(code).Inc()
	p.logger.WarnContext(ctx, "event dead-lettered", "stream_seq", o.seq, "subject", clip(o.subject, maxDLSubject), "field", clip(field, maxField), "reason", clip(reason, maxReason),
		"truncated", out.Header.Get(HeaderTruncated))
	return "", nil
}

// copyLimit is the largest message the dead-letter stream takes: the
// connection's max payload and the stream's max message size, if set.
func (p *Projector) copyLimit(d *deadLetters) int {
	limit := int(p.js.Conn().MaxPayload())
	if limit <= 0 {
		limit = 1 << 20 // the server's default, while no INFO has been seen
	}
	if d != nil && d.maxSize > 0 {
		limit = min(limit, int(d.maxSize))
	}
	return limit
}

// newCopy builds the dead letter of o within limit bytes (headers and
// body). Its headers are the projector's, then the original's, in name
// order, as long as they fit; the body is cut to the room left. A minimal
// copy carries no original header and no body.
func newCopy(o origin, created string, trigger uint64, code, field, reason string, limit int, minimal bool) *nats.Msg {
	out := nats.NewMsg(deadLetterSubject(o.subject))
	h := out.Header
	h.Set(HeaderReason, clip(clean(reason), maxReason))
	h.Set(HeaderCode, code)
	h.Set(HeaderField, clip(clean(field), maxField))
	h.Set(HeaderSubject, o.subject)
	h.Set(HeaderStream, events.Stream)
	if created != "" {
		h.Set(HeaderStreamCreated, created)
	}
	h.Set(HeaderSeq, strconv.FormatUint(o.seq, 10))
	h.Set(HeaderTrigger, strconv.FormatUint(trigger, 10))
	// The copy's id is its origin, the sequence and stream time of the
	// original: publishing it twice stores it once, and the event at the
	// same sequence of a recreated stream is not taken for a duplicate.
	id := "sharesd-deadletter-" + strconv.FormatUint(o.seq, 10)
	if !o.time.IsZero() {
		h.Set(HeaderTime, o.time.UTC().Format(time.RFC3339Nano))
		id += "-" + strconv.FormatInt(o.time.UnixNano(), 10)
	}
	h.Set(jetstream.MsgIDHeader, id)

	headerRoom := min(limit, maxHeaderBlock) - headerSize(h) - truncatedRoom
	dropped := 0
	for _, kv := range originalHeaders(o.header) {
		n := len(kv[0]) + len(kv[1]) + 4 // "k: v\r\n"
		if minimal || n > headerRoom {
			dropped++
			continue
		}
		h.Add(kv[0], kv[1])
		headerRoom -= n
	}
	var notes []string
	if dropped > 0 {
		notes = append(notes, "headers "+strconv.Itoa(dropped))
		h.Set(HeaderTruncated, strings.Join(notes, ", "))
	}
	body := o.data
	if minimal {
		body = nil
	}
	if len(body) < len(o.data) || headerSize(h)+len(body) > limit {
		notes = append([]string{"body " + strconv.Itoa(len(o.data))}, notes...)
		h.Set(HeaderTruncated, strings.Join(notes, ", "))
		body = body[:max(0, min(len(body), limit-headerSize(h)))]
	}
	out.Data = body
	return out
}

// deadLetterSubject is the dead letter's subject: the original's under
// events.DeadLetterPre, cut when it is long (the original subject is in
// HeaderSubject in full).
func deadLetterSubject(subject string) string {
	s := events.DeadLetterPre + subject
	if len(s) <= maxDLSubject {
		return s
	}
	return strings.TrimRight(s[:maxDLSubject], ".")
}

// headerSize is the encoded size of h, as the client sends it and the
// server counts it.
func headerSize(h nats.Header) int {
	return (&nats.Msg{Header: h}).Size()
}

// originalHeaders returns the original's headers as the copy keeps them,
// name/value pairs in a stable order: the Nats-Msg-Id first (under
// HeaderMsgID), then by name.
func originalHeaders(h nats.Header) [][2]string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if a, b := names[i] == jetstream.MsgIDHeader, names[j] == jetstream.MsgIDHeader; a != b {
			return a
		}
		return names[i] < names[j]
	})
	var out [][2]string
	for _, k := range names {
		name := HeaderMsgID
		if k != jetstream.MsgIDHeader {
			name = HeaderOriginalPrefix + escape(k, true)
		}
		for _, v := range h[k] {
			out = append(out, [2]string{name, escape(v, false)})
		}
	}
	return out
}

// escape percent-encodes s for a header name (name set) or value: '%', every
// byte outside printable ASCII, in a name every byte NATS does not allow
// in one, and in a value its leading and trailing spaces. UnescapeHeader
// reverses it.
func escape(s string, name bool) string {
	const hex = "0123456789ABCDEF"
	// Spaces outside [lo, hi) lead or trail a value.
	lo, hi := 0, len(s)
	for lo < hi && s[lo] == ' ' {
		lo++
	}
	for hi > lo && s[hi-1] == ' ' {
		hi--
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		keep := c > ' ' && c < 0x7f && c != '%' || c == ' ' && !name && i >= lo && i < hi
		if keep && name && strings.IndexByte(`"()/,:;<=>?@[\]{}`, c) >= 0 {
			keep = false
		}
		if keep {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// UnescapeHeader returns an original header's name or value as it was
// before the dead letter escaped it (see HeaderOriginalPrefix).
func UnescapeHeader(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// clean makes text the projector writes into a header printable: control
// characters and invalid UTF-8 become spaces.
func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
}

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// refusalText is what an operator needs of a refusal: the server's
// description and code, or the client's error.
func refusalText(err error) string {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return fmt.Sprintf("%s (err_code %d)", api.Description, api.ErrorCode)
	}
	return err.Error()
}

// refusal reports whether err is the dead-letter stream (or the client)
// refusing a message for good — its size, its headers, the stream's rules
// or limits — with a metric label. Everything else (NATS unreachable, a
// timeout, no responders, no leader) is transient and worth retrying.
func refusal(err error) (string, bool) {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return "too_large", true
	case errors.Is(err, nats.ErrBadHeaderMsg):
		return "header", true
	case errors.Is(err, nats.ErrBadSubject):
		return "subject", true
	case !errors.As(err, &api):
		return "", false
	}
	switch api.ErrorCode {
	case 10008, // JetStream cluster not available
		10009, // not the leader
		10023, // insufficient resources
		jetstream.JSErrCodeJetStreamNotEnabled,
		jetstream.JSErrCodeJetStreamNotEnabledForAccount,
		10118: // stream offline
		return "", false
	case jetstream.JSErrCodeStreamMessageExceedsMaximum, 10097: // message or headers over the maximum
		return "too_large", true
	case 10077: // store failed: max messages or bytes with discard new, message too large
		return "stream_full", true
	case 10109:
		return "sealed", true
	}
	return "refused", true
}
