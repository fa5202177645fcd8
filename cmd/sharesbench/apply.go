package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// applySteps groups the workload's kinds into the steps the Redis apply
// ceiling runs one after the other, measuring used_memory between them.
var applySteps = []struct {
	name  string
	kinds []int
}{
	{"renders", []int{kindKey, kindRender}},
	{"shares", []int{kindShare}},
	{"revocations", []int{kindRevoke}},
	{"views", []int{kindView}},
}

// applyRun is the outcome of applying the whole workload from memory.
type applyRun struct {
	events  int
	elapsed time.Duration // apply time only, decoding excluded
	cpu     usage
	memory  map[string]int64 // used_memory growth of each step
	counts  map[string]int   // events of each step
}

func (a applyRun) rate() float64 { return float64(a.events) / a.elapsed.Seconds() }

// applyWorkload is the Redis ceiling: the project's own write path
// (readmodel.Store.Apply, its Lua scripts, one pipeline per batch) fed from
// memory without NATS. Events are decoded up front, step by step, and
// applied in batches of batchSize by workers goroutines; each worker owns a
// share of the renders (by hash), so every render still sees its events in
// stream order. Stream times are synthetic, spacing ms apart, so the dedupe
// horizon of store decides what the seen sets keep.
func applyWorkload(ctx context.Context, rdb *redis.Client, store *readmodel.Store, w *workload, batchSize, workers int, spacing time.Duration, progress io.Writer) (applyRun, error) {
	gen := readmodel.NewGen(time.Now())
	if err := store.LoadScripts(ctx); err != nil {
		return applyRun{}, err
	}
	run := applyRun{memory: map[string]int64{}, counts: map[string]int{}}
	for _, step := range applySteps {
		parts, n, err := decodeStep(w, step.kinds, workers, spacing)
		if err != nil {
			return applyRun{}, err
		}
		before, err := usedMemory(ctx, rdb)
		if err != nil {
			return applyRun{}, err
		}
		c0 := readCPU(ctx, rdb)
		start := time.Now()
		if err := applyParts(ctx, store, gen, parts, batchSize); err != nil {
			return applyRun{}, fmt.Errorf("apply %s: %w", step.name, err)
		}
		el := time.Since(start)
		c1 := readCPU(ctx, rdb)
		after, err := usedMemory(ctx, rdb)
		if err != nil {
			return applyRun{}, err
		}
		// Weigh each step's CPU use by its duration.
		u := c1.since(c0)
		run.cpu.goCores = (run.cpu.goCores*run.elapsed.Seconds() + u.goCores*el.Seconds()) / (run.elapsed + el).Seconds()
		run.cpu.redisCores = (run.cpu.redisCores*run.elapsed.Seconds() + u.redisCores*el.Seconds()) / (run.elapsed + el).Seconds()
		run.events += n
		run.elapsed += el
		run.memory[step.name] = after - before
		run.counts[step.name] = n
		fmt.Fprintf(progress, "  redis apply %s: %d events in %.1fs (%.0f/s), used_memory +%d bytes\n",
			step.name, n, el.Seconds(), float64(n)/el.Seconds(), after-before)
	}
	return run, nil
}

// decodeStep decodes the events of kinds and splits them over workers.
func decodeStep(w *workload, kinds []int, workers int, spacing time.Duration) ([][]readmodel.Op, int, error) {
	parts := make([][]readmodel.Op, workers)
	n := 0
	var buf []byte
	for _, k := range kinds {
		from, to := w.span(k)
		for i := from; i < to; i++ {
			subject, _, data := w.Event(i, buf)
			ev, err := events.Decode(subject, data)
			if err != nil {
				return nil, 0, fmt.Errorf("the workload made a bad event %d: %w", i, err)
			}
			buf = data[:0]
			h := fnv.New32a()
			h.Write([]byte(ev.Entity()))
			p := h.Sum32() % uint32(workers)
			parts[p] = append(parts[p], readmodel.Op{Seq: uint64(i + 1), Time: w.base.Add(time.Duration(i) * spacing), Event: ev})
			n++
		}
	}
	return parts, n, nil
}

func applyParts(ctx context.Context, store *readmodel.Store, gen string, parts [][]readmodel.Op, batchSize int) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		bad   = map[readmodel.Outcome]int{}
	)
	for _, ops := range parts {
		wg.Go(func() {
			for len(ops) > 0 {
				n := min(batchSize, len(ops))
				out, _, err := store.Apply(ctx, gen, ops[:n], 0, false)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				for _, r := range out {
					if o := r.Outcome; o != readmodel.Applied {
						bad[o]++
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
				ops = ops[n:]
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if len(bad) > 0 {
		return fmt.Errorf("events not applied: %v", bad)
	}
	return nil
}
