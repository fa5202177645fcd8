package projector

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// This file holds the generation side of the projector: building one from
// the stream, taking one over from a rebuild, activating it, and deleting
// the ones nothing refers to any more.

// build writes a generation from the start of the stream (resuming the one
// being built, if any) and activates it in place of replace once it has
// reached the stream's head.
func (p *Projector) build(ctx context.Context, ctl readmodel.Control, replace, why string) error {
	gen, from, err := p.prepareBuild(ctx, ctl, false)
	if err != nil {
		return err
	}
	dead, err := p.loadDeadLetters(ctx, ctl)
	if err != nil {
		return err
	}
	p.logger.Warn(why, "gen", gen, "from_seq", from+1)
	p.update(func(s *Status) { s.Rebuilding, s.Gen = true, gen })
	p.metrics.Rebuilding.Set(1)
	defer p.metrics.Rebuilding.Set(0)
	return p.consume(ctx, run{
		gen: gen, from: from, dead: dead, token: p.token,
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
	target := ctl.MaxPos(old, p.store.Partitions())
	p.logger.Info("taking over a rebuilt generation", "gen", gen, "from_seq", ctl.Pos[gen]+1, "until_seq", target)
	dead, err := p.loadDeadLetters(ctx, ctl)
	if err != nil {
		return err
	}
	return p.consume(ctx, run{
		gen: gen, from: ctl.Pos[gen], dead: dead, token: p.token,
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
		_ = p.store.AnnounceSwitch(ctx) // the API stops answering from memory
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
