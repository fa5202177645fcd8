package readmodel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Partitions: the event flow is split into n partitions by entity (see
// events.Partition). Each has a lease, held by at most one projector at a
// time, and a resume position per generation. Keys, all under the {meta}
// hash tag so that one script sees them together:
//
//	sharesd:{meta}:lease:N    string  token of the projector applying partition N (TTL)
//	sharesd:{meta}:members    zset    token of each running projector, scored by the
//	                                  time (ms) its membership expires
//	sharesd:{meta}:ctl        hash    also "partitions" (the deployment's number,
//	                                  set by the first projector) and "pos:G:N"
//	                                  (resume position of partition N in generation G;
//	                                  a bare "pos:G" counts for every partition)

func partLeaseKey(p int) string { return prefix + "{meta}:lease:" + strconv.Itoa(p) }
func membersKey() string        { return prefix + "{meta}:members" }
func partPosField(gen string, p int) string {
	return posField(gen) + ":" + strconv.Itoa(p)
}

// Fields of the control hash for partitions: the deployment's number, and
// a request for a rebuild of the active generation (the stream went
// backwards), which the projector holding every partition serves.
const (
	fieldPartitions = "partitions"
	fieldHeal       = "heal"
)

// RequestHeal asks for the active generation to be rebuilt from the
// stream: a projector that holds only some partitions found the stream
// behind its position. Activate clears it.
func (s *Store) RequestHeal(ctx context.Context) error {
	return s.rdb.HSet(ctx, ctlKey(), fieldHeal, "1").Err()
}

// SetPartitions tells the store the deployment's number of partitions
// (default 1). Call it before any other method.
func (s *Store) SetPartitions(n int) { s.parts = max(n, 1) }

// Partitions is the number SetPartitions set.
func (s *Store) Partitions() int { return max(s.parts, 1) }

// ErrPartitionsDiffer is returned by AgreePartitions when the deployment
// already uses another number of partitions.
var ErrPartitionsDiffer = errors.New("readmodel: the deployment uses another number of partitions")

// AgreePartitions records the store's number of partitions as the
// deployment's if none is recorded, and fails with ErrPartitionsDiffer
// (saying both numbers) when another one is.
func (s *Store) AgreePartitions(ctx context.Context) error {
	got, err := agreePartitions.Run(ctx, s.rdb, []string{ctlKey()}, s.Partitions()).Int()
	if err != nil {
		return fmt.Errorf("agree on partitions: %w", err)
	}
	if got != s.Partitions() {
		return fmt.Errorf("%w: it uses %d, this process was started with %d", ErrPartitionsDiffer, got, s.Partitions())
	}
	return nil
}

// RecordPartitions records the store's number of partitions as the
// deployment's, whatever was recorded before: the last step of a
// re-partitioning (see `sharesd rebuild -repartition`).
func (s *Store) RecordPartitions(ctx context.Context) error {
	return s.rdb.HSet(ctx, ctlKey(), fieldPartitions, s.Partitions()).Err()
}

// RecordedPartitions is the deployment's number of partitions as Redis
// records it (0 when none is).
func (s *Store) RecordedPartitions(ctx context.Context) (int, error) {
	v, err := s.rdb.HGet(ctx, ctlKey(), fieldPartitions).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// Leases is what RenewLeases found: the partitions the caller holds, and
// the tokens of every running projector, sorted.
type Leases struct {
	Owned   []int
	Members []string
}

// RenewLeases renews token's membership and every partition lease it
// holds, for ttl, and drops members whose membership expired.
func (s *Store) RenewLeases(ctx context.Context, token string, ttl time.Duration) (Leases, error) {
	keys := append([]string{membersKey()}, leaseKeys(s.Partitions())...)
	res, err := renewLeases.Run(ctx, s.rdb, keys, token, ttl.Milliseconds()).Slice()
	if err != nil || len(res) != 2 {
		return Leases{}, fmt.Errorf("renew leases: %w", err)
	}
	l := Leases{Owned: ints(res[0]), Members: strs(res[1])}
	slices.Sort(l.Members)
	return l, nil
}

// ClaimLeases takes up to want free partition leases for token, for ttl,
// lowest partitions first, and returns the ones it took.
func (s *Store) ClaimLeases(ctx context.Context, token string, ttl time.Duration, want int) ([]int, error) {
	res, err := claimLeases.Run(ctx, s.rdb, leaseKeys(s.Partitions()), token, ttl.Milliseconds(), want).Slice()
	if err != nil {
		return nil, fmt.Errorf("claim leases: %w", err)
	}
	return ints(res), nil
}

// ReleaseLeases gives up the leases of parts (nil: every partition) that
// token holds; with leave set it also ends token's membership.
func (s *Store) ReleaseLeases(ctx context.Context, token string, parts []int, leave bool) error {
	if parts == nil {
		parts = allParts(s.Partitions())
	}
	keys := []string{membersKey()}
	for _, p := range parts {
		keys = append(keys, partLeaseKey(p))
	}
	l := "0"
	if leave {
		l = "1"
	}
	if err := releaseLeases.Run(ctx, s.rdb, keys, token, l).Err(); err != nil {
		return err
	}
	// A hint: without it the others find the leases free at their next
	// renewal.
	_ = s.AnnounceLeases(ctx)
	return nil
}

// AnnounceLeases tells the projectors following the leases (FollowLeases)
// that the partitions' owners or members changed: one gave up leases or
// joined.
func (s *Store) AnnounceLeases(ctx context.Context) error {
	return s.publish(ctx, s.rdb, leasesChannel(), "changed").Err()
}

// FollowLeases calls f each time a projector announces that it gave up
// leases or joined (AnnounceLeases), until ctx ends, subscribing again
// after a failure. The announcements are hints that spare the projectors
// waiting for their next renewal; one missed costs that wait and no more.
// f is called from one goroutine.
func (s *Store) FollowLeases(ctx context.Context, f func()) {
	wait := followRetry
	for ctx.Err() == nil {
		if s.followLeases(ctx, f) {
			wait = followRetry
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, followRetryLimit)
	}
}

// followLeases runs one subscription of FollowLeases until it fails or ctx
// ends, and reports whether it got subscribed.
func (s *Store) followLeases(ctx context.Context, f func()) (subscribed bool) {
	sub := s.subscribe(ctx, leasesChannel())
	defer sub.Close()
	defer context.AfterFunc(ctx, func() { _ = sub.Close() })() // ends a blocked Receive
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			return subscribed
		}
		switch msg.(type) {
		case *redis.Subscription:
			subscribed = true
		case *redis.Message:
			f()
		}
	}
}

// LeaseOwners returns the token that holds each partition's lease ("" for
// none), indexed by partition.
func (s *Store) LeaseOwners(ctx context.Context) ([]string, error) {
	return s.leaseOwners(ctx, s.Partitions())
}

// LeasesHeld counts the partitions whose lease some projector holds, of
// the store's number of partitions or the deployment's if that is more
// (during a re-partitioning, the old partitions count too).
func (s *Store) LeasesHeld(ctx context.Context) (int, error) {
	n, err := s.RecordedPartitions(ctx)
	if err != nil {
		return 0, err
	}
	owners, err := s.leaseOwners(ctx, max(n, s.Partitions()))
	held := 0
	for _, o := range owners {
		if o != "" {
			held++
		}
	}
	return held, err
}

// leaseOwners is LeaseOwners for partitions 0 to n-1.
func (s *Store) leaseOwners(ctx context.Context, n int) ([]string, error) {
	vals, err := s.rdb.MGet(ctx, leaseKeys(n)...).Result()
	if err != nil {
		return nil, fmt.Errorf("lease owners: %w", err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out, nil
}

func leaseKeys(n int) []string {
	keys := make([]string, n)
	for p := range keys {
		keys[p] = partLeaseKey(p)
	}
	return keys
}

// ErrFenced is returned when a position is saved for a partition whose
// lease the writer no longer holds: another projector applies it now.
var ErrFenced = errors.New("readmodel: partition lease lost")

// Checkpoint is a resume position to save for some partitions of a
// generation, fenced by a lease token.
type Checkpoint struct {
	Seq   uint64
	Parts []int  // nil: every partition
	Token string // "": not fenced (a generation no projector applies)
}

func (s *Store) queueCheckpoint(ctx context.Context, p redis.Pipeliner, gen string, cp Checkpoint) *redis.Cmd {
	parts := cp.Parts
	if parts == nil {
		parts = allParts(s.Partitions())
	}
	keys := make([]string, 1, 1+len(parts))
	args := make([]any, 0, 2+len(parts))
	keys[0] = ctlKey()
	args = append(args, cp.Token, cp.Seq)
	for _, n := range parts {
		args = append(args, partPosField(gen, n))
		if cp.Token != "" {
			keys = append(keys, partLeaseKey(n))
		}
	}
	return evalsha(ctx, p, setPartPos, keys, args...)
}

func fencedErr(err error) error {
	if err != nil && strings.Contains(err.Error(), "FENCED") {
		return fmt.Errorf("%w: %v", ErrFenced, err)
	}
	return err
}

func allParts(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func ints(v any) []int {
	vs, _ := v.([]any)
	out := make([]int, 0, len(vs))
	for _, x := range vs {
		if n, ok := x.(int64); ok {
			out = append(out, int(n))
		}
	}
	return out
}

func strs(v any) []string {
	vs, _ := v.([]any)
	out := make([]string, 0, len(vs))
	for _, x := range vs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// PosOf is partition p's resume position in gen: its own, or the
// generation's bare position when it has none.
func (c Control) PosOf(gen string, p int) uint64 {
	if v, ok := c.Part[gen][p]; ok {
		return v
	}
	return c.bare[gen]
}

// MinPos is the lowest resume position of gen's n partitions: every
// partition has applied the stream at least this far.
func (c Control) MinPos(gen string, n int) uint64 {
	m := c.PosOf(gen, 0)
	for p := 1; p < n; p++ {
		m = min(m, c.PosOf(gen, p))
	}
	return m
}

// MaxPos is the highest resume position of gen's n partitions.
func (c Control) MaxPos(gen string, n int) uint64 {
	var m uint64
	for p := 0; p < n; p++ {
		m = max(m, c.PosOf(gen, p))
	}
	return m
}

// agreePartitions sets ctl's partitions field if unset and returns it.
//
//	KEYS  ctl
//	ARGV  n
var agreePartitions = redis.NewScript(`
redis.call('HSETNX', KEYS[1], 'partitions', ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], 'partitions'))
`)

// renewLeases renews token's membership and leases and lists both.
//
//	KEYS  members, lease:0 … lease:n-1
//	ARGV  token, ttl ms
var renewLeases = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 10 * tonumber(ARGV[2]))
local owned = {}
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    owned[#owned + 1] = i - 2
  end
end
return {owned, redis.call('ZRANGE', KEYS[1], 0, -1)}
`)

// claimLeases takes up to ARGV[3] free leases, in key order.
//
//	KEYS  lease:0 … lease:n-1
//	ARGV  token, ttl ms, want
var claimLeases = redis.NewScript(`
local want, got = tonumber(ARGV[3]), {}
for i = 1, #KEYS do
  if #got >= want then break end
  if redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then got[#got + 1] = i - 1 end
end
return got
`)

// releaseLeases deletes the leases token holds among KEYS[2..], and its
// membership when ARGV[2] is "1".
//
//	KEYS  members, lease:p …
//	ARGV  token, leave
var releaseLeases = redis.NewScript(`
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
if ARGV[2] == '1' then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`)

// setPartPos raises partition positions of a generation, never lowers
// them; with a token it first checks that the token holds every
// partition's lease (KEYS[2..], in the order of the fields) and changes
// nothing when one has moved on.
//
//	KEYS  ctl[, lease:p …]
//	ARGV  token, position, field …
var setPartPos = redis.NewScript(`
local pos = tonumber(ARGV[2])
if ARGV[1] ~= '' then
  for i = 2, #KEYS do
    if redis.call('GET', KEYS[i]) ~= ARGV[1] then
      return redis.error_reply('FENCED partition lease moved on: ' .. KEYS[i])
    end
  end
end
for i = 3, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur or tonumber(cur) < pos then redis.call('HSET', KEYS[1], ARGV[i], ARGV[2]) end
end
return 0
`)

var partitionScripts = []*redis.Script{agreePartitions, renewLeases, claimLeases, releaseLeases, setPartPos}
