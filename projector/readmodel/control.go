package readmodel

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewGen names a new generation. Names are unique over time (not a counter
// kept in Redis), so a generation started after Redis lost its data can
// never meet the leftovers of an older one.
func NewGen(now time.Time) string { return "g" + strconv.FormatInt(now.UnixMicro(), 36) }

// SetPos raises the resume position of every partition of gen to pos.
func (s *Store) SetPos(ctx context.Context, gen string, pos uint64) error {
	return s.SaveCheckpoint(ctx, gen, Checkpoint{Seq: pos})
}

// SaveCheckpoint raises the resume positions cp names (see ApplyParts).
func (s *Store) SaveCheckpoint(ctx context.Context, gen string, cp Checkpoint) error {
	p := s.rdb.Pipeline()
	s.queueCheckpoint(ctx, p, gen, cp)
	_, err := p.Exec(ctx)
	if isNoScript(err) {
		if err := s.LoadScripts(ctx); err != nil {
			return err
		}
		return s.SaveCheckpoint(ctx, gen, cp)
	}
	if err != nil {
		return fmt.Errorf("set position of %s: %w", gen, fencedErr(err))
	}
	return nil
}

// Rewind sets gen's resume position back to pos (SetPos only raises it):
// the projector that next starts on gen reads the stream again from pos+1,
// as after a crash that lost its last saved positions. No list changes:
// every render, project and key skips the sequences it has applied, so the
// events read again count once.
func (s *Store) Rewind(ctx context.Context, gen string, pos uint64) error {
	fields := []any{posField(gen), pos}
	for p := range s.Partitions() {
		fields = append(fields, partPosField(gen, p), pos)
	}
	if err := s.rdb.HSet(ctx, ctlKey(), fields...).Err(); err != nil {
		return fmt.Errorf("rewind %s to %d: %w", gen, pos, err)
	}
	return nil
}

// SetStream records the identity of the stream gen is built from, so a
// stream deleted and recreated under the projector is noticed.
func (s *Store) SetStream(ctx context.Context, gen, stream string) error {
	return s.rdb.HSet(ctx, ctlKey(), streamField(gen), stream).Err()
}

// StartBuilding records gen as the generation a full rebuild writes.
func (s *Store) StartBuilding(ctx context.Context, gen string) error {
	if !validGen(gen) {
		return fmt.Errorf("bad generation name %q", gen)
	}
	return s.rdb.HSet(ctx, ctlKey(), fieldBuilding, gen).Err()
}

// RequestHandover asks the live projector to take over generation gen,
// bring it up to its own position and make it active.
func (s *Store) RequestHandover(ctx context.Context, gen string) error {
	return s.rdb.HSet(ctx, ctlKey(), fieldHandover, gen).Err()
}

// Activate makes gen the active generation if prev ("" for none) still is.
// It reports whether it did, and announces the switch when it did (see
// FollowApplied).
func (s *Store) Activate(ctx context.Context, gen, prev string) (bool, error) {
	n, err := activate.Run(ctx, s.rdb, []string{ctlKey()}, gen, prev).Int()
	if err != nil {
		return false, fmt.Errorf("activate %s: %w", gen, err)
	}
	if n == 1 {
		if err := s.rdb.HDel(ctx, ctlKey(), fieldHeal).Err(); err != nil {
			return true, fmt.Errorf("activate %s: clear the heal request: %w", gen, err)
		}
		// The switch is made whatever happens to its announcement: a
		// reader that misses it learns of it when its subscription starts
		// over, and trusts nothing kept for longer than 2 s meanwhile.
		_ = s.AnnounceSwitch(ctx)
	}
	return n == 1, nil
}

// AnnounceSwitch tells the readers that anything they read may have
// changed: another generation is active, or the read model vanished. It
// tries twice.
func (s *Store) AnnounceSwitch(ctx context.Context) error {
	err := s.announce(ctx, s.rdb, announceSwitch).Err()
	if err != nil {
		err = s.announce(ctx, s.rdb, announceSwitch).Err()
	}
	return err
}

// DropGen deletes every key of generation gen with SCAN and UNLINK (never
// KEYS), on every master of a cluster, and forgets its position. It reports
// how many keys it removed.
func (s *Store) DropGen(ctx context.Context, gen string) (int64, error) {
	if !validGen(gen) {
		return 0, fmt.Errorf("bad generation name %q", gen)
	}
	var total atomic.Int64
	drop := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, genPattern(gen), 1000).Iterator()
		batch := make([]string, 0, 500)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			// One UNLINK per key: on a cluster node, keys of several slots
			// cannot share a command (CROSSSLOT), but can a pipeline.
			p := c.Pipeline()
			cmds := make([]*redis.IntCmd, len(batch))
			for i, k := range batch {
				cmds[i] = p.Unlink(ctx, k)
			}
			_, err := p.Exec(ctx)
			for _, cmd := range cmds {
				total.Add(cmd.Val())
			}
			batch = batch[:0]
			return err
		}
		for it.Next(ctx) {
			if batch = append(batch, it.Val()); len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return flush()
	}
	if err := s.forEachMaster(ctx, drop); err != nil {
		return total.Load(), fmt.Errorf("drop generation %s: %w", gen, err)
	}
	return total.Load(), s.forgetGen(ctx, gen)
}

// forgetGen deletes gen's positions (bare and per partition, whatever the
// number of partitions that wrote them) and stream from the control hash.
func (s *Store) forgetGen(ctx context.Context, gen string) error {
	fields := []string{posField(gen), streamField(gen)}
	m, err := s.rdb.HKeys(ctx, ctlKey()).Result()
	if err != nil {
		return err
	}
	for _, f := range m {
		if strings.HasPrefix(f, posField(gen)+":") {
			fields = append(fields, f)
		}
	}
	return s.rdb.HDel(ctx, ctlKey(), fields...).Err()
}

// Generations lists the generations that hold keys, found with SCAN on
// every master of a cluster.
func (s *Store) Generations(ctx context.Context) (map[string]int64, error) {
	var mu sync.Mutex
	gens := map[string]int64{}
	err := s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, prefix+"g*", 1000).Iterator()
		for it.Next(ctx) {
			k := it.Val()[len(prefix):]
			if i := strings.IndexByte(k, ':'); i >= 0 {
				mu.Lock()
				gens[k[:i]]++
				mu.Unlock()
			}
		}
		return it.Err()
	})
	return gens, err
}

// SwapRender moves the rebuilt copy of one render (written to the scratch
// generation of gen) over the live keys, atomically, if the copy has applied
// at least as far as the live keys. It reports the live sequence the copy
// must still reach, or 0 when it swapped.
func (s *Store) SwapRender(ctx context.Context, gen, renderID string) (uint64, error) {
	keys := append(renderKeysOf(gen, renderID).slice(), renderKeysOf(scratchGen(gen), renderID).slice()...)
	n, err := swapRender.Run(ctx, s.rdb, keys).Int64()
	if err != nil {
		return 0, fmt.Errorf("swap render %s: %w", renderID, err)
	}
	if n >= 0 {
		return uint64(n), nil
	}
	// Swapped: tell the API processes, whose kept bodies of the render
	// may hold what the swap repaired.
	if err := s.AnnounceChanged(ctx, renderID); err != nil {
		return 0, fmt.Errorf("swap render %s: announce: %w", renderID, err)
	}
	return 0, nil
}

// DropScratch deletes a render's scratch copy.
func (s *Store) DropScratch(ctx context.Context, gen, renderID string) error {
	return s.rdb.Del(ctx, renderKeysOf(scratchGen(gen), renderID).slice()...).Err()
}

// ScratchGen is the generation name a single-render rebuild of gen writes.
func ScratchGen(gen string) string { return scratchGen(gen) }

// MaxmemoryPolicy returns Redis's maxmemory-policy. On a cluster it asks
// every master and returns the first policy other than noeviction that one
// of them has, so a warning about eviction is not missed.
func (s *Store) MaxmemoryPolicy(ctx context.Context) (string, error) {
	var mu sync.Mutex
	policy := ""
	err := s.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		m, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if p := m["maxmemory-policy"]; policy == "" || policy == "noeviction" {
			policy = p
		}
		return nil
	})
	return policy, err
}
