package projector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// Config tunes a Projector. Zero values take the defaults.
type Config struct {
	BatchSize  int           // events per Redis round trip (default 512)
	LeaseTTL   time.Duration // how long a dead projector keeps its partition leases (default 5s)
	DropGrace  time.Duration // how long a replaced generation stays readable (default 5s)
	MaxBackoff time.Duration // longest pause between retries (default 5s)
	// MaxFetchBytes bounds the events in memory (default 8 MiB): what the
	// consumer has asked the server for and not yet handed over stays
	// within it (raised to twice the server's max payload if that is more),
	// and so do events taken from the stream but not yet applied, so at
	// most about 2 × MaxFetchBytes are held.
	MaxFetchBytes int
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
	if c.MaxFetchBytes <= 0 {
		c.MaxFetchBytes = 8 << 20
	}
}

// Projector applies the CRAFTKIT stream to the Redis read model. Any number
// may run: they share the partitions (see partitions.go).
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

	// wake ends a wait for the next lease renewal early: another projector
	// gave up leases or joined (see readmodel.Store.FollowLeases).
	wake chan struct{}

	mu     sync.Mutex
	status Status
}

// Status is what the projector last did, for health checks and `status`.
type Status struct {
	Leader     bool      // holds at least one partition lease
	Parts      []int     // the partitions whose leases it holds
	Gen        string    // generation being written
	Rebuilding bool      // writing a generation that is not active yet
	Applied    uint64    // position reached
	Pending    uint64    // events left after the last batch
	Head       uint64    // stream's last sequence, last seen
	LastBatch  time.Time // when a batch was last applied
	// Progress is when Applied last advanced or was last at Head: with Head
	// beyond Applied and Progress old, the projector is stuck.
	Progress    time.Time
	LastError   string
	LastErrorAt time.Time
}

// New returns a Projector. metrics must not be nil (see NewMetrics).
func New(js jetstream.JetStream, store *readmodel.Store, logger *slog.Logger, metrics *Metrics, cfg Config) *Projector {
	cfg.defaults()
	var b [6]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	token := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	return &Projector{js: js, store: store, logger: logger, metrics: metrics, cfg: cfg, token: token, wake: make(chan struct{}, 1)}
}

// Status returns a copy of the projector's status.
func (p *Projector) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

func (p *Projector) setOwned(parts []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.Parts = slices.Clone(parts)
	p.metrics.PartitionsOwned.Set(float64(len(parts)))
	p.metrics.PartitionLag.Reset() // atHead sets the ones held
}

// Token names this projector: its lease token and its membership, shown by
// `sharesd status` as the owner of its partitions.
func (p *Projector) Token() string { return p.token }

func (p *Projector) setApplied(gen string, applied, pending uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.status.Gen, p.status.Applied, p.status.Pending, p.status.LastBatch = gen, applied, pending, now
	p.status.Progress = now // a batch was applied: the position advanced
}

// setHead records the stream's head as a run sees it (at its start and each
// idle second) together with the position the run has reached.
func (p *Projector) setHead(head, applied uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.status
	if applied > s.Applied || applied >= head || s.Progress.IsZero() {
		s.Progress = time.Now()
	}
	s.Head, s.Applied = head, applied
}

func (p *Projector) update(f func(*Status)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.status)
}

// Run projects until ctx ends: it takes its share of the partitions (see
// partitions.go), follows the control state for them (live, build, take
// over) and retries every failure with backoff from the last saved
// positions. On return the positions are saved and the leases released at
// once, so the other projectors take the partitions over without waiting
// for the leases to expire.
//
// It first records the store's number of partitions as the deployment's,
// or returns readmodel.ErrPartitionsDiffer when another one is recorded.
func (p *Projector) Run(ctx context.Context) error {
	follow, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	go p.store.FollowLeases(follow, p.nudge)
	backoff := newBackoff(p.cfg.MaxBackoff)
	joined := false
	for agreed := false; ctx.Err() == nil; {
		if !agreed {
			err := p.store.AgreePartitions(ctx)
			switch {
			case errors.Is(err, readmodel.ErrPartitionsDiffer):
				return err
			case err != nil:
				p.fail(ctx, "agree on partitions", err)
				backoff.wait(ctx)
				continue
			}
			agreed = true
		}
		owned, err := p.balance(ctx)
		if err == nil && !joined {
			// The others share the partitions with this new member at
			// once rather than at their next renewal.
			joined = p.store.AnnounceLeases(ctx) == nil
		}
		switch {
		case err != nil:
			p.fail(ctx, "take leases", err)
			p.metrics.RedisErrors.Inc()
			backoff.wait(ctx)
		case len(owned) == 0:
			p.update(func(s *Status) { s.Leader = false })
			p.pause(ctx, p.cfg.LeaseTTL/5)
		default:
			backoff.reset()
			p.update(func(s *Status) { s.Leader = true })
			p.lead(ctx, owned)
		}
	}
	p.update(func(s *Status) { s.Leader = false })
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = p.store.ReleaseLeases(rctx, p.token, nil, true) // whatever it still holds
	p.setOwned(nil)
	return nil
}

var errLeaseLost = errors.New("projector: lease lost")

// lead projects the partitions owned while this projector holds them and
// should: it returns when a lease is lost, the share changed, or the
// control state calls for generation work that needs every partition.
func (p *Projector) lead(parent context.Context, owned []int) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	go p.watch(ctx, cancel, owned)
	go p.collect(ctx)
	if err := p.store.LoadScripts(ctx); err != nil {
		p.fail(ctx, "load scripts", err)
	}
	backoff := newBackoff(p.cfg.MaxBackoff)
	for ctx.Err() == nil {
		err := p.step(ctx, owned)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errNeedAll):
			// balance gives every partition to the first member, once the
			// others have given theirs up.
			sleep(ctx, p.cfg.LeaseTTL/10)
			return
		case errors.Is(err, errSwitch):
			backoff.reset()
		case err != nil:
			p.fail(ctx, "project", err)
			backoff.wait(ctx) // a lease may be lost meanwhile
		}
	}
	if errors.Is(context.Cause(ctx), errLeaseLost) {
		p.logger.Warn("lost a partition lease; taking a new share", "partitions", owned)
	}
}

// step reads the control state and runs what it calls for until that ends.
func (p *Projector) step(ctx context.Context, owned []int) error {
	ctl, err := p.store.ReadControl(ctx)
	if err != nil {
		p.metrics.RedisErrors.Inc()
		return err
	}
	n := p.store.Partitions()
	if genWork(ctl) && len(owned) < n {
		return errNeedAll
	}
	switch {
	case ctl.Active == "":
		p.dropStrays(ctx, ctl)
		return p.build(ctx, ctl, "", "no active generation: building one from the stream; the API answers 503 until it is done")
	case ctl.Handover != "" && ctl.Handover != ctl.Active:
		return p.takeover(ctx, ctl)
	case ctl.Heal:
		return p.build(ctx, ctl, ctl.Active, "rebuilding after the stream went backwards")
	}
	return p.runLive(ctx, ctl, owned)
}

// runLive applies the stream to the active generation's partitions owned
// from their saved positions until the control state calls for something
// else, or asks for a rebuild when the stream went backwards under it.
func (p *Projector) runLive(ctx context.Context, ctl readmodel.Control, owned []int) error {
	gen := ctl.Active
	parts := newPartSet(p.store.Partitions(), owned, ctl, gen)
	backwards, err := p.streamWentBackwards(ctx, ctl, gen, ctl.MaxPos(gen, p.store.Partitions()))
	switch {
	case err != nil:
		return err
	case backwards && parts.all():
		return p.build(ctx, ctl, gen, "rebuilding after the stream went backwards")
	case backwards:
		if err := p.store.RequestHeal(ctx); err != nil {
			return err
		}
		return errNeedAll
	}
	dead, err := p.loadDeadLetters(ctx, ctl)
	if err != nil {
		return err
	}
	p.update(func(s *Status) { s.Rebuilding = false })
	p.wasLive = gen
	return p.consume(ctx, run{
		gen: gen, from: parts.start(), live: true, dead: dead, parts: parts, token: p.token,
		check: liveCheck(gen),
		after: func(context.Context, uint64, bool) error { return nil },
	})
}

// streamWentBackwards reports whether the stream was recreated or restored
// from an older copy under gen: its last sequence is below pos, or its
// creation time is not the one gen was built from. A generation that has
// recorded no stream yet records this one.
func (p *Projector) streamWentBackwards(ctx context.Context, ctl readmodel.Control, gen string, pos uint64) (bool, error) {
	info, err := p.streamInfo(ctx)
	if err != nil {
		return false, err
	}
	id := streamID(info)
	switch built := ctl.Streams[gen]; {
	case info.State.LastSeq < pos || built != "" && built != id:
		p.metrics.SelfHeals.Inc()
		p.logger.Error("STREAM WENT BACKWARDS: it was recreated or restored from an older copy (its last sequence is below the recorded position, or its creation time changed); rebuilding the read model from the stream while the old generation keeps serving",
			"stream", events.Stream, "stream_last_seq", info.State.LastSeq, "position", pos, "gen", gen)
		return true, nil
	case built == "":
		return false, p.store.SetStream(ctx, gen, id)
	}
	return false, nil
}

// liveCheck ends a live run on gen when the control state no longer makes
// it the active generation, or hands it over.
func liveCheck(gen string) func(readmodel.Control) error {
	return func(c readmodel.Control) error {
		switch {
		// Not !c.Present(): the batch that met the empty Redis saved
		// this generation's position again in the same round trip.
		case c.Active == "":
			return errSwitch // step notices the loss and rebuilds
		case c.Active != gen, c.Handover != "" && c.Handover != gen, c.Heal:
			return errSwitch
		}
		return nil
	}
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

// nudge ends the current or next pause (see wake).
func (p *Projector) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// pause waits for d, until ctx ends or until nudged.
func (p *Projector) pause(ctx context.Context, d time.Duration) { waitFor(ctx, d, p.wake) }

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) { waitFor(ctx, d, nil) }

// waitFor waits for d, until ctx ends or until wake delivers (a nil wake
// never does).
func waitFor(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}
