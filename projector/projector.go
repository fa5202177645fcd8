package projector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// Config tunes a Projector. Zero values take the defaults.
type Config struct {
	BatchSize  int           // events per Redis round trip (default 512)
	LeaseTTL   time.Duration // how long a dead projector keeps the lease (default 5s)
	DropGrace  time.Duration // how long a replaced generation stays readable (default 5s)
	MaxBackoff time.Duration // longest pause between retries (default 5s)
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 512
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.DropGrace <= 0 {
		c.DropGrace = 5 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
}

// Projector applies the CRAFTKIT stream to the Redis read model. Any number
// may run: one holds the lease and projects, the others wait to take over.
type Projector struct {
	js      jetstream.JetStream
	store   *readmodel.Store
	logger  *slog.Logger
	metrics *Metrics
	cfg     Config
	token   string

	// wasLive is the generation the projector last ran live on, so a
	// vanished read model is told from a first start (step's goroutine only).
	wasLive string

	mu     sync.Mutex
	status Status
}

// Status is what the projector last did, for health checks and `status`.
type Status struct {
	Leader      bool      // holds the lease
	Gen         string    // generation being written
	Rebuilding  bool      // writing a generation that is not active yet
	Applied     uint64    // position reached
	Pending     uint64    // events left after the last batch
	Head        uint64    // stream's last sequence, last seen
	LastBatch   time.Time // when a batch was last applied
	LastError   string
	LastErrorAt time.Time
}

// New returns a Projector. metrics must not be nil (see NewMetrics).
func New(js jetstream.JetStream, store *readmodel.Store, logger *slog.Logger, metrics *Metrics, cfg Config) *Projector {
	cfg.defaults()
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &Projector{js: js, store: store, logger: logger, metrics: metrics, cfg: cfg, token: hex.EncodeToString(b[:])}
}

// Status returns a copy of the projector's status.
func (p *Projector) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

func (p *Projector) setApplied(gen string, applied, pending uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.Gen, p.status.Applied, p.status.Pending, p.status.LastBatch = gen, applied, pending, time.Now()
}

func (p *Projector) setHead(head uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.Head = head
}

func (p *Projector) update(f func(*Status)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.status)
}

// Run projects until ctx ends: it waits for the lease, then follows the
// control state (build, live, take over) and retries every failure with
// backoff from the last saved position. On return the position is saved and
// the lease released.
func (p *Projector) Run(ctx context.Context) error {
	backoff := newBackoff(p.cfg.MaxBackoff)
	for ctx.Err() == nil {
		held, err := p.store.Lease(ctx, p.token, p.cfg.LeaseTTL)
		switch {
		case err != nil:
			p.fail(ctx, "take lease", err)
			p.metrics.RedisErrors.Inc()
			backoff.wait(ctx)
		case !held:
			p.update(func(s *Status) { s.Leader = false })
			sleep(ctx, p.cfg.LeaseTTL/5)
		default:
			backoff.reset()
			p.update(func(s *Status) { s.Leader = true })
			p.lead(ctx)
			p.update(func(s *Status) { s.Leader = false })
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = p.store.ReleaseLease(rctx, p.token)
	return nil
}

var errLeaseLost = errors.New("projector: lease lost")

// lead projects while this projector holds the lease.
func (p *Projector) lead(parent context.Context) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	go p.renew(ctx, cancel)
	go p.collect(ctx)
	if err := p.store.LoadScripts(ctx); err != nil {
		p.fail(ctx, "load scripts", err)
	}
	backoff := newBackoff(p.cfg.MaxBackoff)
	for ctx.Err() == nil {
		err := p.step(ctx)
		switch {
		case ctx.Err() != nil:
			if errors.Is(context.Cause(ctx), errLeaseLost) {
				p.logger.Warn("lost the projector lease; standing by")
			}
			return
		case errors.Is(err, errSwitch):
			backoff.reset()
		case err != nil:
			p.fail(ctx, "project", err)
			backoff.wait(ctx)
		}
	}
}

// renew keeps the lease while ctx lives, and cancels ctx when another
// projector has taken it or it could not be renewed before it expired.
func (p *Projector) renew(ctx context.Context, cancel context.CancelCauseFunc) {
	t := time.NewTicker(p.cfg.LeaseTTL / 3)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := p.store.Lease(ctx, p.token, p.cfg.LeaseTTL)
		switch {
		case err == nil && held:
			last = time.Now()
		case err == nil:
			cancel(errLeaseLost)
			return
		case time.Since(last) > p.cfg.LeaseTTL:
			cancel(errLeaseLost)
			return
		}
	}
}

// step reads the control state and runs what it calls for until that ends.
func (p *Projector) step(ctx context.Context) error {
	ctl, err := p.store.ReadControl(ctx)
	if err != nil {
		p.metrics.RedisErrors.Inc()
		return err
	}
	switch {
	case ctl.Active == "":
		p.dropStrays(ctx, ctl)
		return p.build(ctx, ctl, "", "no active generation: building one from the stream; the API answers 503 until it is done")
	case ctl.Handover != "" && ctl.Handover != ctl.Active:
		return p.takeover(ctx, ctl)
	}
	gen, pos := ctl.Active, ctl.Pos[ctl.Active]
	info, err := p.streamInfo(ctx)
	if err != nil {
		return err
	}
	id := streamID(info)
	switch built := ctl.Streams[gen]; {
	case info.State.LastSeq < pos || built != "" && built != id:
		p.metrics.SelfHeals.Inc()
		p.logger.Error("STREAM WENT BACKWARDS: it was recreated or restored from an older copy (its last sequence is below the recorded position, or its creation time changed); rebuilding the read model from the stream while the old generation keeps serving",
			"stream", events.Stream, "stream_last_seq", info.State.LastSeq, "position", pos, "gen", gen)
		return p.build(ctx, ctl, gen, "rebuilding after the stream went backwards")
	case built == "":
		if err := p.store.SetStream(ctx, gen, id); err != nil {
			return err
		}
	}
	p.update(func(s *Status) { s.Rebuilding = false })
	p.wasLive = gen
	return p.consume(ctx, run{
		gen: gen, from: pos, live: true,
		check: func(c readmodel.Control) error {
			switch {
			// Not !c.Present(): the batch that met the empty Redis saved
			// this generation's position again in the same round trip.
			case c.Active == "":
				return errSwitch // step notices the loss and rebuilds
			case c.Active != gen, c.Handover != "" && c.Handover != gen:
				return errSwitch
			}
			return nil
		},
		after: func(context.Context, uint64, bool) error { return nil },
	})
}

// build writes a generation from the start of the stream (resuming the one
// being built, if any) and activates it in place of replace once it has
// reached the stream's head.
func (p *Projector) build(ctx context.Context, ctl readmodel.Control, replace, why string) error {
	gen, from, err := p.prepareBuild(ctx, ctl, false)
	if err != nil {
		return err
	}
	info, err := p.streamInfo(ctx)
	if err != nil {
		return err
	}
	p.logger.Warn(why, "gen", gen, "from_seq", from+1)
	p.update(func(s *Status) { s.Rebuilding, s.Gen = true, gen })
	p.metrics.Rebuilding.Set(1)
	defer p.metrics.Rebuilding.Set(0)
	return p.consume(ctx, run{
		gen: gen, from: from, deadLetterFrom: handledBy(ctl, streamID(info)),
		check: func(c readmodel.Control) error {
			if c.Active != replace || !c.Present() {
				return errSwitch
			}
			return nil
		},
		after: func(ctx context.Context, applied uint64, caughtUp bool) error {
			p.progress(applied)
			if !caughtUp {
				return nil
			}
			return p.activate(ctx, gen, replace, applied)
		},
	})
}

// takeover brings the generation a rebuild handed over up to the live
// position and makes it active: readers see the old generation until the
// new one has everything the old one had, so nothing they saw goes missing.
func (p *Projector) takeover(ctx context.Context, ctl readmodel.Control) error {
	gen, old := ctl.Handover, ctl.Active
	target := ctl.Pos[old]
	p.logger.Info("taking over a rebuilt generation", "gen", gen, "from_seq", ctl.Pos[gen]+1, "until_seq", target)
	dlFrom, err := p.deadLetterFrom(ctx, ctl)
	if err != nil {
		return err
	}
	return p.consume(ctx, run{
		gen: gen, from: ctl.Pos[gen], deadLetterFrom: dlFrom,
		check: func(c readmodel.Control) error {
			if c.Active != old || c.Handover != gen {
				return errSwitch
			}
			return nil
		},
		after: func(ctx context.Context, applied uint64, caughtUp bool) error {
			if applied < target && !caughtUp {
				return nil
			}
			return p.activate(ctx, gen, old, applied)
		},
	})
}

// prepareBuild picks the generation a build writes and where it resumes:
// the one being built, unless fresh is set or it was built from another
// incarnation of the stream, in which case it is dropped for a new one.
func (p *Projector) prepareBuild(ctx context.Context, ctl readmodel.Control, fresh bool) (string, uint64, error) {
	info, err := p.streamInfo(ctx)
	if err != nil {
		return "", 0, err
	}
	id := streamID(info)
	gen := ctl.Building
	if gen != "" && (fresh || ctl.Streams[gen] != "" && ctl.Streams[gen] != id || ctl.Pos[gen] > info.State.LastSeq) {
		if _, err := p.store.DropGen(ctx, gen); err != nil {
			return "", 0, err
		}
		gen = ""
	}
	if gen != "" {
		return gen, ctl.Pos[gen], p.store.SetStream(ctx, gen, id)
	}
	gen = readmodel.NewGen(time.Now())
	if err := p.store.SetStream(ctx, gen, id); err != nil {
		return "", 0, err
	}
	return gen, 0, p.store.StartBuilding(ctx, gen)
}

func (p *Projector) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := p.js.Stream(ctx, events.Stream)
	if err != nil {
		p.metrics.NATSErrors.Inc()
		return nil, fmt.Errorf("stream %s: %w", events.Stream, err)
	}
	return s.CachedInfo(), nil
}

// streamID identifies one incarnation of the stream: its creation time.
func streamID(info *jetstream.StreamInfo) string { return info.Created.UTC().Format(time.RFC3339Nano) }

// activate saves gen's position, makes it active in place of prev and
// schedules prev's deletion.
func (p *Projector) activate(ctx context.Context, gen, prev string, applied uint64) error {
	if err := p.store.SetPos(ctx, gen, applied); err != nil {
		return err
	}
	ok, err := p.store.Activate(ctx, gen, prev)
	if err != nil {
		return err
	}
	if ok {
		p.logger.Info("generation active", "gen", gen, "replaced", prev, "position", applied)
		if prev != "" {
			go p.drop(context.WithoutCancel(ctx), prev, p.cfg.DropGrace)
		}
	}
	return errSwitch
}

func (p *Projector) progress(applied uint64) {
	st := p.Status()
	p.metrics.RebuildDone.Set(float64(applied))
	p.metrics.RebuildTotal.Set(float64(st.Head))
}

// drop deletes a replaced generation after grace, so readers that resolved
// it just before the swap finish first.
func (p *Projector) drop(ctx context.Context, gen string, grace time.Duration) {
	sleep(ctx, grace)
	n, err := p.store.DropGen(ctx, gen)
	if err != nil {
		p.logger.Warn("drop old generation", "gen", gen, "err", err)
		return
	}
	p.logger.Info("old generation deleted", "gen", gen, "keys", n)
}

// dropStrays runs when there is no active generation. If this projector
// was live a moment ago, the read model vanished under it (Redis restarted
// empty, failed over to an empty replica, FLUSHALL): say so loudly. Either
// way it deletes, after the grace period, generations that hold a position
// but are not being built — left by a run that saved its position into the
// Redis that had just lost everything.
func (p *Projector) dropStrays(ctx context.Context, ctl readmodel.Control) {
	if p.wasLive != "" {
		p.metrics.SelfHeals.Inc()
		p.logger.Error("READ MODEL VANISHED (Redis restarted empty or was flushed): rebuilding from the stream; the API answers 503 meanwhile", "gen", p.wasLive)
		p.wasLive = ""
	}
	for g := range ctl.Pos {
		if g != ctl.Building {
			go p.drop(context.WithoutCancel(ctx), g, p.cfg.DropGrace)
		}
	}
}

// collect deletes generations that nothing refers to (left by a crash
// between a swap and its clean-up), once, after the grace period.
func (p *Projector) collect(ctx context.Context) {
	sleep(ctx, p.cfg.DropGrace)
	if ctx.Err() != nil {
		return
	}
	gens, err := p.store.Generations(ctx)
	if err != nil {
		return
	}
	ctl, err := p.store.ReadControl(ctx)
	if err != nil || !ctl.Present() {
		return
	}
	live := func(g string) bool { return g == ctl.Active || g == ctl.Building || g == ctl.Handover }
	for g := range gens {
		// A single-render rebuild's scratch copy lives while its generation does.
		if parent, scratch := strings.CutSuffix(g, readmodel.ScratchGen("")); live(g) || scratch && live(parent) {
			continue
		}
		p.drop(ctx, g, 0)
	}
}

// handledBy is the position up to which earlier runs on the stream
// incarnation id dead-lettered every bad event. Positions reached on another
// incarnation (the stream was deleted and recreated) say nothing of this
// one's events; a generation without a recorded stream counts as this one.
func handledBy(ctl readmodel.Control, id string) uint64 {
	var m uint64
	for g, v := range ctl.Pos {
		if s := ctl.Streams[g]; s == "" || s == id {
			m = max(m, v)
		}
	}
	return m
}

// deadLetterFrom is handledBy for the stream as it is now.
func (p *Projector) deadLetterFrom(ctx context.Context, ctl readmodel.Control) (uint64, error) {
	info, err := p.streamInfo(ctx)
	if err != nil {
		return 0, err
	}
	return handledBy(ctl, streamID(info)), nil
}

func (p *Projector) fail(ctx context.Context, what string, err error) {
	p.logger.ErrorContext(ctx, what, "err", err)
	p.update(func(s *Status) { s.LastError, s.LastErrorAt = what+": "+err.Error(), time.Now() })
}

type backoff struct{ cur, max time.Duration }

func newBackoff(max time.Duration) *backoff { return &backoff{max: max} }
func (b *backoff) reset()                   { b.cur = 0 }
func (b *backoff) wait(ctx context.Context) {
	b.cur = min(max(2*b.cur, 50*time.Millisecond), b.max)
	sleep(ctx, b.cur)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
