package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/cmd/internal/local"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// scaleProc is one projector of the scale phase with its own clients, as
// a `sharesd projector` process has.
type scaleProc struct {
	nc   *nats.Conn
	rdb  redis.UniversalClient
	reg  *prometheus.Registry
	proj *projector.Projector
	done chan struct{}
}

// startScaleProc starts a projector on the clusters with PARTITIONS=8 and
// env's lease TTL, until ctx ends.
func startScaleProc(ctx context.Context, env *scaleEnv, batch int) (*scaleProc, error) {
	nc, err := nats.Connect(env.nats.URL, nats.Name("sharesbench-projector"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to the NATS cluster: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	rdb, err := local.RedisClient(env.redis.URL, true, false)
	if err != nil {
		nc.Close()
		return nil, err
	}
	store := readmodel.New(rdb, readmodel.DefaultHorizon)
	store.SetPartitions(events.DefaultPartitions)
	p := &scaleProc{nc: nc, rdb: rdb, reg: prometheus.NewRegistry(), done: make(chan struct{})}
	p.proj = projector.New(js, store, slog.New(slog.DiscardHandler), projector.NewMetrics(p.reg), projector.Config{BatchSize: batch, LeaseTTL: env.lease})
	go func() {
		defer close(p.done)
		_ = p.proj.Run(ctx)
	}()
	return p, nil
}

// wait waits for Run to return (its context ended: leases released, as on
// SIGTERM) and closes the clients.
func (p *scaleProc) wait() {
	<-p.done
	_ = p.rdb.Close()
	p.nc.Close()
}

// applied is how many events the projector applied: the sum of
// sharesd_events_applied_total over types and outcomes.
func (p *scaleProc) applied() float64 {
	mfs, err := p.reg.Gather()
	if err != nil {
		return 0
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "sharesd_events_applied_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// catchUp resets the read model, starts procs projectors at once and
// times them until every partition has been applied up to the stream's
// head, then until every partition's position is saved there.
func (env *scaleEnv) catchUp(ctx context.Context, procs, batch int, progress io.Writer) (scaleRun, error) {
	r := scaleRun{procs: procs}
	if err := env.reset(ctx); err != nil {
		return r, err
	}
	pctx, stop := context.WithCancel(ctx)
	var ps []*scaleProc
	defer func() {
		stop()
		for _, p := range ps {
			p.wait()
		}
	}()
	c0 := env.cpu(ctx)
	start := time.Now()
	for range procs {
		p, err := startScaleProc(pctx, env, batch)
		if err != nil {
			return r, err
		}
		ps = append(ps, p)
	}
	if err := env.waitHead(ctx, ps, start, &r, progress); err != nil {
		return r, err
	}
	r.cpu = env.cpu(ctx).since(c0)
	if err := env.waitSaved(ctx, start, &r); err != nil {
		return r, err
	}
	for _, p := range ps {
		r.applied = append(r.applied, p.applied())
		r.inBytes = append(r.inBytes, p.nc.Stats().InBytes)
	}
	fmt.Fprintf(progress, "  %d projector(s): %d events in %.2fs (%.0f/s), fair share after %.2fs, positions saved after %.2fs, applied per process %v, NATS bytes in per process %v, CPU %.2f / %.2f cores\n",
		procs, env.lastSeq, r.elapsed.Seconds(), float64(env.lastSeq)/r.elapsed.Seconds(), r.spread.Seconds(), r.saved.Seconds(), r.applied, r.inBytes, r.cpu.goCores, r.cpu.redisCores)
	return r, nil
}

// waitHead polls the projectors' status every 10 ms until, for every
// partition, the projector holding it has applied the stream to its head;
// it also notes when the partitions were first shared fairly.
func (env *scaleEnv) waitHead(ctx context.Context, ps []*scaleProc, start time.Time, r *scaleRun, progress io.Writer) error {
	n := events.DefaultPartitions
	last := start
	for {
		covered, held, fair := 0, 0, true
		at := make([]bool, n)
		for _, p := range ps {
			st := p.proj.Status()
			held += len(st.Parts)
			fair = fair && len(st.Parts) >= n/len(ps)
			for _, q := range st.Parts {
				if st.Applied >= env.lastSeq && !at[q] {
					at[q], covered = true, covered+1
				}
			}
		}
		now := time.Now()
		if r.spread == 0 && fair && held == n {
			r.spread = now.Sub(start)
		}
		if covered == n {
			r.elapsed = now.Sub(start)
			return nil
		}
		if now.Sub(start) > 30*time.Minute {
			return fmt.Errorf("not caught up after 30 minutes: %d of %d partitions at the head", covered, n)
		}
		if now.Sub(last) >= 2*time.Second {
			last = now
			fmt.Fprintf(progress, "  %d projector(s): %d of %d partitions at the head after %.0fs\n", len(ps), covered, n, now.Sub(start).Seconds())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // the poll interval: the measure's resolution
		}
	}
}

// waitSaved polls the control state until every partition's resume
// position in the active generation is at the stream's head: the
// projectors save it on their next idle second.
func (env *scaleEnv) waitSaved(ctx context.Context, start time.Time, r *scaleRun) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ctl, err := env.store.ReadControl(ctx)
		if err != nil {
			return err
		}
		if ctl.Active != "" && ctl.MinPos(ctl.Active, events.DefaultPartitions) >= env.lastSeq {
			r.saved = time.Since(start)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("positions not saved at the head %d a minute after catching up: %+v", env.lastSeq, ctl.Part)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
