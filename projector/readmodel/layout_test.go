package readmodel

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/events/eventstest"
	"github.com/craftkit/sharesd/projector/model"
)

// What an existing deployment holds: renders written by the scripts before
// the compact layout. The tests below write them with that very script and
// check that the new scripts read them, apply to them and convert them,
// with the reference model as the answer.

// legacyApplyRender is applyRender before the compact layout (share order
// in a zset, views in clicks, version 1 records, digests in the seen zset),
// verbatim.
var legacyApplyRender = redis.NewScript(`
local seq = tonumber(ARGV[1])
local t, project = ARGV[2], ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'seq', 'project', 'deleted', 'listed', 'reg')
local function foreign(outcome)
  local out = {outcome}
  for _, f in ipairs(redis.call('HKEYS', KEYS[7])) do
    local p, kind, rest = string.match(f, '^([^|]*)|(.)|(.*)$')
    if kind == 'q' and p ~= cur[2] then out[#out + 1] = rest end
  end
  if #out == 1 then return outcome end
  return out
end
if cur[1] and tonumber(cur[1]) >= seq then
  if cur[2] and cur[2] ~= project then return 5 end
  if cur[5] == ARGV[1] then return foreign(1) end
  return 1
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1])
local now, horizon = tonumber(ARGV[5]), tonumber(ARGV[6])
local registers = t == 'share.created' or t == 'render.created'
if cur[2] and cur[2] ~= project then return 3 end
if not cur[2] and not registers then
  local pre = project .. '|'
  redis.call('HSET', KEYS[7], pre .. 'q|' .. ARGV[1], '1')
  local seen = redis.call('HGET', KEYS[7], pre .. 's|' .. ARGV[4])
  if seen and tonumber(seen) >= now - horizon then return 2 end
  redis.call('HSET', KEYS[7], pre .. 's|' .. ARGV[4], ARGV[5])
  if t == 'share.viewed' then
    redis.call('HINCRBY', KEYS[7], pre .. 'c|' .. ARGV[7], 1)
  elseif t == 'share.revoked' then
    redis.call('HSETNX', KEYS[7], pre .. 'r|' .. ARGV[7], ARGV[8])
  elseif t == 'render.deleted' then
    redis.call('HSET', KEYS[7], pre .. 'd|', '1')
  end
  return 6
end
local reply = 0
if not cur[2] then
  redis.call('HSET', KEYS[1], 'project', project)
  cur[2] = project
  local drop = {}
  local fields = redis.call('HGETALL', KEYS[7])
  for i = 1, #fields, 2 do
    local f, v = fields[i], fields[i + 1]
    local p, kind, rest = string.match(f, '^([^|]*)|(.)|(.*)$')
    if p == project then
      drop[#drop + 1] = f
      if kind == 'c' then
        redis.call('HINCRBY', KEYS[4], rest, tonumber(v))
      elseif kind == 'r' then
        redis.call('HSETNX', KEYS[5], rest, v)
      elseif kind == 'd' then
        cur[3] = '1'
      elseif kind == 's' and tonumber(v) >= now - horizon then
        redis.call('ZADD', KEYS[6], 'NX', tonumber(v), rest)
      end
    elseif kind ~= 'q' then
      drop[#drop + 1] = f
    end
  end
  for i = 1, #drop, 500 do
    redis.call('HDEL', KEYS[7], unpack(drop, i, math.min(i + 499, #drop)))
  end
  if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('PEXPIRE', KEYS[6], horizon + 3600000) end
  if cur[3] then
    redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
    redis.call('HSET', KEYS[1], 'deleted', '1')
  end
  reply = foreign(0)
  if type(reply) == 'table' then redis.call('HSET', KEYS[1], 'reg', ARGV[1]) end
end
if cur[3] then
  if type(reply) == 'table' then reply[1] = 4 return reply end
  return 4
end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. (now - horizon))
if redis.call('ZADD', KEYS[6], 'NX', now, ARGV[4]) == 0 then
  if type(reply) == 'table' then reply[1] = 2 return reply end
  return 2
end
redis.call('PEXPIRE', KEYS[6], horizon + 3600000)
local changed = false
if t == 'share.viewed' then
  redis.call('HINCRBY', KEYS[4], ARGV[7], 1)
  changed = redis.call('ZSCORE', KEYS[2], ARGV[7]) ~= false
elseif t == 'share.created' then
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[8], ARGV[7]) == 1 then
    redis.call('HSET', KEYS[3], ARGV[7], ARGV[9])
    changed = true
  end
  if not cur[4] then redis.call('HSET', KEYS[1], 'listed', '1'); changed = true end
elseif t == 'share.revoked' then
  if redis.call('HSETNX', KEYS[5], ARGV[7], ARGV[8]) == 1 then
    changed = redis.call('ZSCORE', KEYS[2], ARGV[7]) ~= false
  end
elseif t == 'render.created' then
  if not cur[4] then redis.call('HSET', KEYS[1], 'listed', '1'); changed = true end
elseif t == 'render.deleted' then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
  redis.call('HSET', KEYS[1], 'deleted', '1')
  changed = true
end
if changed then redis.call('HSET', KEYS[1], 'ver', ARGV[1]) end
return reply
`)

// legacyApply applies render and share ops as the earlier projector did.
func (f *fixture) legacyApply(ops ...Op) {
	f.t.Helper()
	ctx := context.Background()
	horizon := f.store.horizon.Milliseconds()
	for _, op := range ops {
		ev := op.Event
		k := renderKeysOf(f.gen, ev.RenderID)
		keys := []string{k[kRender], k[kShares], k[kRecs], k[kClicks], k[kRevoked], k[kOldSeen], k[kPending]}
		args := []any{op.Seq, string(ev.Type), ev.ProjectID, digest(ev.ID), op.Time.UnixMilli(), horizon}
		switch d := ev.Data.(type) {
		case *events.ShareCreated:
			rec := encodeShare(d)
			v1 := append([]byte{recordV1}, rec[1+viewsLen:]...)
			args = append(args, d.ShareID, events.Millis(d.CreatedAt), v1)
		case *events.ShareRevoked:
			args = append(args, d.ShareID, encodeRevocation(d))
		case *events.ShareViewed:
			args = append(args, d.ShareID)
		}
		if err := legacyApplyRender.Run(ctx, f.rdb, keys, args...).Err(); err != nil && err != redis.Nil {
			f.t.Fatalf("legacy apply seq %d: %v", op.Seq, err)
		}
	}
}

// renderStream is a random stream of render and share events on a few
// renders of two projects, with republished copies of earlier events
// (same id and body) some within the horizon and some beyond it.
type renderStream struct {
	rng   *mrand.Rand
	at    time.Time
	gap   time.Duration // longest time between two events
	msgs  []model.Msg
	ops   []Op
	sent  []eventstest.Event
	names []string // renders
}

func newRenderStream(t testing.TB, seed uint64, n int, gap time.Duration) *renderStream {
	s := &renderStream{rng: mrand.New(mrand.NewPCG(seed, 1)), at: epoch, gap: gap, names: []string{renderA, renderB}}
	for len(s.msgs) < n {
		s.add(t, s.next())
	}
	return s
}

// next is a new event, or a copy of one sent before.
func (s *renderStream) next() eventstest.Event {
	r := s.rng
	if len(s.sent) > 0 && r.IntN(4) == 0 {
		return s.sent[r.IntN(len(s.sent))]
	}
	project := projectA
	if r.IntN(8) == 0 {
		project = projectB
	}
	render := s.names[r.IntN(len(s.names))]
	share := fmt.Sprintf("s%d", r.IntN(6))
	var e eventstest.Event
	switch k := r.IntN(20); {
	case k < 2:
		e = eventstest.RenderCreated(project, render)
	case k < 6:
		e = eventstest.ShareCreated(project, render, share, fmt.Sprintf("2026-06-05T10:00:0%dZ", r.IntN(3)))
	case k < 8:
		e = eventstest.ShareRevoked(project, render, share, "2026-06-05T11:00:00Z", nil)
	case k < 19 || len(s.msgs) < 40:
		e = eventstest.ShareViewed(project, render, share)
	default:
		e = eventstest.RenderDeleted(project, render)
	}
	s.sent = append(s.sent, e)
	return e
}

func (s *renderStream) add(t testing.TB, e eventstest.Event) {
	s.at = s.at.Add(time.Duration(s.rng.Int64N(int64(s.gap))))
	seq := uint64(len(s.msgs) + 1)
	msg := model.Msg{Seq: seq, Time: s.at, Subject: e.Subject(), Data: e.Body()}
	s.msgs = append(s.msgs, msg)
	s.ops = append(s.ops, Op{Seq: seq, Time: s.at, Event: e.Decode(t)})
}

// wantModel checks that every render of the stream lists what the model
// of its first n messages lists, for both projects.
func (f *fixture) wantModel(s *renderStream, n int, horizon time.Duration) {
	f.t.Helper()
	m := model.Fold(s.msgs[:n], horizon)
	for _, render := range s.names {
		for _, project := range []string{projectA, projectB} {
			want, ok := m.List(project, render, testBase)
			got, _, err := f.list(project, render)
			if !ok {
				if err != ErrNotFound {
					f.t.Fatalf("after %d events: render %s of %s: err %v, want not found", n, render, project[:4], err)
				}
				continue
			}
			if err != nil {
				f.t.Fatalf("after %d events: render %s of %s: %v", n, render, project[:4], err)
			}
			if w := modelShares(want); fmt.Sprint(got) != fmt.Sprint(w) {
				f.t.Fatalf("after %d events: render %s of %s:\n got  %v\n want %v", n, render, project[:4], got, w)
			}
		}
	}
}

func modelShares(in []model.Share) []share {
	out := []share{}
	for _, s := range in {
		out = append(out, share{ID: s.ID, Channel: s.Channel, RecipientEmail: s.RecipientEmail, Message: s.Message,
			RevokedAt: s.RevokedAt, RevokedReason: s.RevokedReason, ExpiresAt: s.ExpiresAt, CreatedAt: s.CreatedAt,
			ShareToken: s.ShareToken, ClickCount: s.ClickCount})
	}
	return out
}

// TestLegacyRenderUpgrade: renders written in the earlier layout up to a
// random point of a random stream, then by the current scripts, list what
// the reference model lists at both points: the old layout is read as it
// is, converted on its next write, and a copy of an event the old scripts
// applied is still dropped within the horizon (and counted beyond it).
func TestLegacyRenderUpgrade(t *testing.T) {
	t.Parallel()
	const horizon = time.Second
	f := newFixture(t, horizon)
	for seed := range uint64(40) {
		f.switchGen(fmt.Sprintf("%sx%d", f.gen, seed))
		s := newRenderStream(t, seed, 120, 300*time.Millisecond)
		k := int(s.rng.IntN(len(s.ops)))
		f.legacyApply(s.ops[:k]...)
		f.wantModel(s, k, horizon)
		for i := k; i < len(s.ops); i += 16 {
			f.applyOps(f.gen, s.ops[i:min(i+16, len(s.ops))]...)
		}
		f.wantModel(s, len(s.ops), horizon)
		for _, op := range s.ops[k:] {
			if n := f.rdb.Exists(context.Background(), renderKeysOf(f.gen, op.Event.RenderID)[kShares]).Val(); n != 0 {
				t.Fatalf("seed %d: render %s keeps the old shares zset after a write", seed, op.Event.RenderID)
			}
		}
	}
}

// switchGen makes gen the fixture's generation and the active one.
func (f *fixture) switchGen(gen string) {
	f.t.Helper()
	ok, err := f.store.Activate(context.Background(), gen, f.gen)
	if err != nil || !ok {
		f.t.Fatalf("activate %s: %v %v", gen, ok, err)
	}
	f.gen = gen
}

// TestDedupeTable: one render gets thousands of views whose event ids are
// drawn from a pool, so copies fall within the horizon and beyond it, while
// the dedupe table grows by splitting its shards: every view counts as the
// reference model says, the table split, and it holds little more than the
// digests still within the horizon.
func TestDedupeTable(t *testing.T) {
	t.Parallel()
	const horizon = time.Second
	f := newFixture(t, horizon)
	s := &renderStream{rng: mrand.New(mrand.NewPCG(7, 7)), at: epoch, gap: 2 * time.Millisecond, names: []string{renderA}}
	s.add(t, eventstest.ShareCreated(projectA, renderA, "s1", "2026-06-05T10:00:00Z"))
	pool := make([]string, 1200)
	for i := range pool {
		pool[i] = fmt.Sprintf("view-%d", i)
	}
	for range 5000 {
		s.add(t, eventstest.ShareViewed(projectA, renderA, "s1").WithID(pool[s.rng.IntN(len(pool))]))
	}
	for i := 0; i < len(s.ops); i += 512 {
		f.applyOps(f.gen, s.ops[i:min(i+512, len(s.ops))]...)
	}
	f.wantModel(s, len(s.msgs), horizon)

	table := f.rdb.HGetAll(context.Background(), renderKeysOf(f.gen, renderA)[kSeen]).Val()
	held := 0
	for field, v := range table {
		if field != "n" {
			held += len(v) / 16
		}
	}
	at := map[string]time.Time{} // when each id last counted, as the model decides
	for _, op := range s.ops {
		if t, ok := at[op.Event.ID]; !ok || t.Before(op.Time.Add(-horizon)) {
			at[op.Event.ID] = op.Time
		}
	}
	live := 0 // digests the table must hold
	for _, t := range at {
		if !t.Before(s.at.Add(-horizon)) {
			live++
		}
	}
	if n, _ := strconv.Atoi(table["n"]); n < 10 {
		t.Errorf("the table has %d shards, want it split into 10 or more", n)
	}
	t.Logf("%d shards hold %d digests, %d of them within the horizon", len(table)-1, held, live)
	if held < live || held > live*12/10+100 {
		t.Errorf("the table holds %d digests, want %d (those within the horizon) or a little more", held, live)
	}
}

// TestMemoryBudget: what the layout costs Redis (used_memory) stays within
// issue 11's budget, in the costly case of a render big enough for Redis's
// hash table encodings: a share with UUID id and token, a message and a
// view, at most 250 B once the horizon has passed; a view's digest at most
// 63 B while it is within the horizon. The bench measures the same on its
// workload.
func TestMemoryBudget(t *testing.T) {
	t.Parallel()
	const shares, views = 2000, 20000
	msg := "Here is your signed agreement."
	var perShare, perView float64
	for _, horizon := range []time.Duration{time.Millisecond, time.Hour} {
		f := newFixture(t, horizon)
		s := &renderStream{rng: mrand.New(mrand.NewPCG(1, 2)), at: epoch, gap: 2 * time.Millisecond, names: []string{renderA}}
		s.add(t, eventstest.RenderCreated(projectA, renderA))
		f.applyOps(f.gen, s.ops...)
		before := f.usedMemory()
		for i := range shares {
			id := eventstest.UUID(i)
			s.add(t, eventstest.ShareCreated(projectA, renderA, id, "2026-06-05T10:00:00Z").With("shareToken", id).With("message", msg))
			s.add(t, eventstest.ShareViewed(projectA, renderA, id))
		}
		f.applyBatches(s.ops[1:])
		afterShares := f.usedMemory()
		from := len(s.ops)
		for i := range views {
			s.add(t, eventstest.ShareViewed(projectA, renderA, eventstest.UUID(i%shares)))
		}
		f.applyBatches(s.ops[from:])
		if horizon == time.Millisecond {
			perShare = float64(afterShares-before) / shares
		} else {
			perView = float64(f.usedMemory()-afterShares) / views
		}
	}
	t.Logf("%.0f B per share once the horizon has passed, %.0f B per view within it", perShare, perView)
	if perShare > 250 {
		t.Errorf("%.0f B per share, want at most 250", perShare)
	}
	if perView > 63 {
		t.Errorf("%.0f B per view within the horizon, want at most 63", perView)
	}
}

// applyBatches applies ops in batches of 512, as Applied.
func (f *fixture) applyBatches(ops []Op) {
	f.t.Helper()
	for i := 0; i < len(ops); i += 512 {
		for j, out := range f.applyOps(f.gen, ops[i:min(i+512, len(ops))]...) {
			if out != Applied {
				f.t.Fatalf("op %d: %v, want applied", ops[i+j].Seq, out)
			}
		}
	}
}

// usedMemory is Redis's used_memory.
func (f *fixture) usedMemory() int64 {
	f.t.Helper()
	info, err := f.rdb.InfoMap(context.Background(), "memory").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	n, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
	if err != nil {
		f.t.Fatalf("used_memory: %v", err)
	}
	return n
}
