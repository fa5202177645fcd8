package projector

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// errSwitch ends a run because the control state asks for another one.
var errSwitch = errors.New("projector: switch generation")

// A run applies the stream, from just after position from, to one
// generation. The live projector, a rebuild and a takeover are runs that
// differ in what they announce and when they stop.
type run struct {
	gen    string
	from   uint64   // every event at or below it is already applied
	filter []string // subjects, nil for the whole stream

	// live runs announce their position to waiting readers.
	live bool
	// dead is what earlier runs dead-lettered, which this run skips (see
	// deadletter_mark.go).
	dead *deadLetters

	// scratch runs (a single-render rebuild) keep no resume position.
	scratch bool

	// parts are the partitions the run applies, with their positions; nil
	// for every partition from from. token fences the run's checkpoints
	// ("" for a generation no projector applies: see readmodel.Checkpoint).
	parts *partSet
	token string

	// check is called with the control state read after each batch (and
	// each idle second) when set: it returns errSwitch to end the run.
	check func(ctl readmodel.Control) error

	// after is called after each batch and idle second with the position
	// and whether the run has reached the stream's head; it returns
	// errSwitch (or another error) to end the run.
	after func(ctx context.Context, applied uint64, caughtUp bool) error
}

// consume runs r until its context ends, its check or after hooks end it,
// or an error (which the caller retries from the saved position). It waits
// for the first message of a batch, takes the rest without waiting, and
// applies them; each idle second it saves the position and looks at the
// control state and the stream's head instead.
func (p *Projector) consume(ctx context.Context, r run) (err error) {
	cons, it, err := p.subscribe(ctx, r)
	if err != nil {
		return err
	}
	held := newBudget(p.cfg.MaxFetchBytes)
	msgs, errc, stop := feed(it, 2*p.cfg.BatchSize, held, r.parts)
	defer stop()
	pos := &position{applied: r.from, saved: r.from}
	defer func() { // save the position reached, whatever ends the run
		if serr := p.saveReached(ctx, r, pos); err == nil {
			err = serr
		}
	}()
	if err := p.reportHead(ctx, r, cons, pos.applied); err != nil {
		return err
	}
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	batch := make([]delivered, 0, p.cfg.BatchSize)
	for {
		clear(batch) // drop the applied messages, which the next batch may not overwrite
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			p.metrics.NATSErrors.Inc()
			return fmt.Errorf("consume: %w", err)
		case m := <-msgs:
			batch = fill(append(batch, m), msgs)
			err = p.advance(ctx, r, batch, pos, held, msgs)
		case <-idle.C:
			err = p.idleSecond(ctx, r, cons, pos)
		}
		if err != nil {
			return err
		}
	}
}

// position is how far a run has got: applied is the end of the last batch
// written to Redis in full, saved the resume position Redis holds.
type position struct{ applied, saved uint64 }

// subscribe creates the run's ordered consumer, from just after r.from,
// and the iterator of its messages.
func (p *Projector) subscribe(ctx context.Context, r run) (jetstream.Consumer, jetstream.MessagesContext, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: r.filter, DeliverPolicy: jetstream.DeliverAllPolicy}
	if r.from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.from+1
	}
	cons, err := p.js.OrderedConsumer(ctx, events.Stream, cfg)
	if err != nil {
		p.metrics.NATSErrors.Inc()
		return nil, nil, fmt.Errorf("ordered consumer from %d: %w", r.from+1, err)
	}
	// What the server has been asked for and the iterator holds stays
	// within fetchBytes, so a run of large events cannot make the server
	// queue more for this connection than it sends before dropping it as a
	// slow consumer. Not PullMaxMessagesWithBytesLimit: a pull with a byte
	// limit that ends by its message count ends with a status message too
	// ("409 Batch Completed"), and the iterator's channel, as large as that
	// count, then overflows and drops messages.
	it, err := cons.Messages(jetstream.PullMaxBytes(p.fetchBytes()))
	if err != nil {
		p.metrics.NATSErrors.Inc()
		return nil, nil, fmt.Errorf("messages: %w", err)
	}
	return cons, it, nil
}

// fill adds to batch what msgs holds already, up to batch's capacity,
// without waiting.
func fill(batch []delivered, msgs <-chan delivered) []delivered {
	for len(batch) < cap(batch) {
		select {
		case m := <-msgs:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// advance applies batch and moves pos past it. The batch's round trip
// saves pos.applied, the end of the previous batch, which its own trip
// wrote in full: the position never runs ahead of the data.
func (p *Projector) advance(ctx context.Context, r run, batch []delivered, pos *position, held *budget, msgs <-chan delivered) error {
	ctl, pending, err := p.applyBatch(ctx, r, batch, pos.applied)
	if err != nil {
		return err
	}
	held.release(bytesOf(batch))
	pos.saved = pos.applied
	pos.applied = batch[len(batch)-1].md.Sequence.Stream // applyBatch checked md
	if err := p.checkControl(ctx, r, ctl); err != nil {
		return err
	}
	return r.after(ctx, pos.applied, pending == 0 && len(msgs) == 0)
}

// idleSecond is what a run does when no message came for a second: save
// the position, check the control state, and report how far the stream's
// head is.
func (p *Projector) idleSecond(ctx context.Context, r run, cons jetstream.Consumer, pos *position) error {
	ctl, err := p.idle(ctx, r, pos)
	if err != nil {
		return err
	}
	if err := p.checkControl(ctx, r, ctl); err != nil {
		return err
	}
	return p.reportHead(ctx, r, cons, pos.applied)
}

// reportHead tells r.after the position and whether the run has reached
// the stream's head.
func (p *Projector) reportHead(ctx context.Context, r run, cons jetstream.Consumer, applied uint64) error {
	caughtUp, err := p.atHead(ctx, cons, r.filter, applied)
	if err != nil {
		return err
	}
	return r.after(ctx, applied, caughtUp)
}

// saveReached saves the position a run reached when it ends, if it has
// moved since it was last saved. It has its own deadline: the run's context
// may be what ended it.
func (p *Projector) saveReached(ctx context.Context, r run, pos *position) error {
	if pos.applied <= pos.saved || r.scratch {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	return p.store.SaveCheckpoint(sctx, r.gen, r.checkpoint(pos.applied))
}

// checkpoint is the resume position seq for r's partitions.
func (r run) checkpoint(seq uint64) readmodel.Checkpoint {
	cp := readmodel.Checkpoint{Seq: seq, Token: r.token}
	if !r.parts.all() {
		cp.Parts = r.parts.owned
	}
	return cp
}

// delivered is a message with its metadata and its decoded event. feed
// works them out ahead of the loop, so decoding the next batch (most of the
// projector's CPU) overlaps with writing the current one to Redis.
type delivered struct {
	msg   jetstream.Msg
	size  int // what it holds of the feed's budget
	md    *jetstream.MsgMetadata
	mdErr error
	ev    events.Event
	err   error // events.Decode's
	skip  bool  // another partition's event, or one its partition applied
}

// feed moves messages from the iterator to a channel, decoded, so the loop
// can wait for the first message of a batch and take the rest without
// waiting. The channel holds at most size messages, and each message holds
// its size of held until the loop releases it after applying its batch:
// messages taken from the iterator wait for room in held, so decoded events
// waiting or being written to Redis stay within its bytes.
//
// Messages of other partitions than parts', or at or below their
// partition's position, are passed on undecoded, marked skip: they only
// move the run's position.
func feed(it jetstream.MessagesContext, size int, held *budget, parts *partSet) (<-chan delivered, <-chan error, func()) {
	msgs := make(chan delivered, size)
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		for {
			m, err := it.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					errc <- err
				}
				return
			}
			d := delivered{msg: m, size: msgSize(m)}
			if !held.take(d.size, done) {
				return
			}
			if d.md, d.mdErr = m.Metadata(); d.mdErr == nil {
				if d.skip = !parts.keeps(m.Subject(), d.md.Sequence.Stream); !d.skip {
					d.ev, d.err = events.Decode(m.Subject(), m.Data())
				}
			}
			select {
			case msgs <- d:
			case <-done:
				return
			}
		}
	}()
	return msgs, errc, func() { close(done); it.Stop() }
}

// fetchBytes bounds what the iterator asks the server for and holds:
// MaxFetchBytes, or more when the server accepts messages so large that two
// would not fit. The iterator asks again once half of it is handed over, so
// every pull can take at least one message of the max payload (the server
// counts the subject and reply subject too, and ends with a 409 status a
// pull that cannot take its next message).
func (p *Projector) fetchBytes() int {
	return max(p.cfg.MaxFetchBytes, 2*(int(p.js.Conn().MaxPayload())+fetchSlack))
}

// fetchSlack is room for a message's subjects beyond its payload.
const fetchSlack = 64 << 10

// msgSize is about what a message takes in memory: its payload, subject
// and headers (which count against the server's max payload too).
func msgSize(m jetstream.Msg) int {
	n := len(m.Data()) + len(m.Subject())
	for k, vs := range m.Headers() {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

func bytesOf(batch []delivered) int {
	n := 0
	for _, d := range batch {
		n += d.size
	}
	return n
}

// A budget bounds the bytes of messages that feed has taken from the
// iterator and the loop has not applied yet.
type budget struct {
	mu    sync.Mutex
	used  int
	limit int
	freed chan struct{} // signalled, without waiting, on each release
}

func newBudget(limit int) *budget {
	return &budget{limit: limit, freed: make(chan struct{}, 1)}
}

// take reserves n bytes, waiting while others hold too much of the budget
// for them to fit; a message larger than the whole budget goes through
// alone, so none can stall the loop. It returns false if done closes first.
func (b *budget) take(n int, done <-chan struct{}) bool {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return true
		}
		b.mu.Unlock()
		select {
		case <-b.freed:
		case <-done:
			return false
		}
	}
}

// release returns n bytes to the budget.
func (b *budget) release(n int) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
}

func seqOf(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

// idle saves the position when it has moved and reads the control state,
// so a quiet projector still notices a handover or a flushed Redis.
func (p *Projector) idle(ctx context.Context, r run, pos *position) (readmodel.Control, error) {
	if pos.applied > pos.saved && !r.scratch {
		if err := p.store.SaveCheckpoint(ctx, r.gen, r.checkpoint(pos.applied)); err != nil {
			p.metrics.RedisErrors.Inc()
			return readmodel.Control{}, err
		}
		pos.saved = pos.applied
	}
	ctl, err := p.store.ReadControl(ctx)
	if err != nil {
		p.metrics.RedisErrors.Inc()
	}
	return ctl, err
}

// atHead reports whether nothing matching filter lies beyond applied, and
// updates the lag metrics.
func (p *Projector) atHead(ctx context.Context, cons jetstream.Consumer, filter []string, applied uint64) (bool, error) {
	s, err := p.js.Stream(ctx, events.Stream)
	if err != nil {
		p.metrics.NATSErrors.Inc()
		return false, fmt.Errorf("stream info: %w", err)
	}
	head := s.CachedInfo().State.LastSeq
	p.metrics.StreamHead.Set(float64(head))
	p.setHead(head, applied)
	if head < applied {
		// The stream was recreated or restored from an older copy under
		// the run; its ordered consumer would wait, silently, for a
		// sequence the stream may never reach. End the run: the next step
		// sees the stream behind the position and rebuilds.
		return false, fmt.Errorf("stream's last sequence %d is below the applied position %d", head, applied)
	}
	if filter != nil {
		// Only this filter's subjects matter: ask the consumer what it has
		// still to deliver and what it delivered last.
		info, err := cons.Info(ctx)
		if err != nil {
			p.metrics.NATSErrors.Inc()
			return false, fmt.Errorf("consumer info: %w", err)
		}
		return info.NumPending == 0 && info.Delivered.Stream <= applied, nil
	}
	for _, q := range p.Status().Parts {
		p.metrics.PartitionLag.WithLabelValues(strconv.Itoa(q)).Set(float64(head - applied))
	}
	if applied >= head {
		p.metrics.LagEvents.Set(0)
		p.metrics.LagSeconds.Set(0)
		return true, nil
	}
	p.metrics.LagEvents.Set(float64(head - applied))
	return false, nil
}

func (p *Projector) checkControl(ctx context.Context, r run, ctl readmodel.Control) error {
	if r.check == nil {
		return nil
	}
	return r.check(ctl)
}
