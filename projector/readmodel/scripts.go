package readmodel

import "github.com/redis/go-redis/v9"

// Every write script is guarded by the entity's last applied stream
// sequence, so running one twice (a go-redis retry after a network error, a
// redelivery after a crash, a replay) changes nothing the second time. A
// dedupe table or seen set is trimmed by stream time on every write and
// expires an hour past the horizon after its last write, so a render that
// goes quiet does not keep its digests forever. A redelivered event of
// another project answers StaleMismatch rather than Stale, so its dead
// letter is not lost when the first copy never made it. Script replies are
// outcomes (see Outcome).

// applyRender applies one render or share event.
//
// A render belongs to the project whose render.created or share.created
// registers it. Until then the events of every project are held apart in
// the pending hash, per project: fields "<project>|q|<seq>" (each event's
// sequence), "|s|<digest>" (seen, stream ms), "|c|<shareId>" (views),
// "|r|<shareId>" (first revocation) and "|d|" (deleted). Registration moves
// the registering project's part into the render and drops the rest except
// the other projects' sequences, which the reply lists for dead-lettering:
// {outcome, seq, seq, ...}. They stay in the hash, so a redelivered
// registration (its sequence is the render's "reg", kept only when it
// listed some) lists them again.
//
// A share is one field of recs: its record with its view count inside (see
// record.go), so a view rewrites one small value. Views of a share that does
// not exist yet are counted in clicks, and stay there: the list adds them
// to the record's count (they are rare, and creating a share then costs no
// lookup of them).
//
// The dedupe table (kSeen) holds 16-byte entries, the first 10 bytes of the
// event id's digest and its stream time (ms, 6 bytes big-endian), appended
// to shards: fields "0", "1", ... and "n" (how many, 1 when absent). The
// digest's first 4 bytes address a shard by linear hashing, so the table
// grows one shard split at a time and every shard stays a short string (48
// entries at most before a split). Two event ids of one render that share
// 80 bits of digest would be taken for one: with N events in a render's
// horizon the chance is below N²/2^81, 8e-8 for 5,000 events/s on one
// render over 24 h.
// Expired entries are trimmed from the front of the shard each write
// touches, and of the next shard on every fourth sequence, so a table whose
// render slowed down still sheds them; the key expires an hour past the
// horizon.
//
// A render written before this layout (no "lay" in its hash) is converted
// on its next write: its shares zset is dropped (recs holds every share and
// older records count views in clicks), and its digests stay in the old
// seen zset, which is still read until the horizon has passed over them
// ("lay" holds the stream time of the conversion, "0" once none is left).
//
//	KEYS  render, shares, recs, clicks, revoked, seen, pending, old seen
//	      (see renderKeysOf)
//	ARGV  seq, type, projectId, event digest (16 bytes), stream time ms,
//	      horizon ms, shareId, createdAt ms | revocation, record
var applyRender = redis.NewScript(`
local seq = tonumber(ARGV[1])
local t, project = ARGV[2], ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'seq', 'project', 'deleted', 'listed', 'reg', 'lay')
local function foreign(outcome)
  local out = {outcome}
  for _, f in ipairs(redis.call('HKEYS', KEYS[7])) do
    local p, kind, rest = string.match(f, '^([^|]*)|(.)|(.*)$')
    if kind == 'q' and p ~= cur[2] then out[#out + 1] = rest end
  end
  if #out == 1 then return outcome end
  return out
end
` + dedupeLua + `
if cur[1] and tonumber(cur[1]) >= seq then
  if cur[2] and cur[2] ~= project then return 5 end
  if cur[5] == ARGV[1] then return foreign(1) end
  return 1
end
local now, horizon = tonumber(ARGV[5]), tonumber(ARGV[6])
local set = {'seq', ARGV[1]}
if not cur[6] then
  cur[6] = '0'
  if cur[1] then cur[6] = ARGV[5]; redis.call('UNLINK', KEYS[2]) end
  set = {'seq', ARGV[1], 'lay', cur[6]}
end
local function fin(outcome)
  redis.call('HSET', KEYS[1], unpack(set))
  return outcome
end
local registers = t == 'share.created' or t == 'render.created'
if cur[2] and cur[2] ~= project then return fin(3) end
if not cur[2] and not registers then
  local pre = project .. '|'
  redis.call('HSET', KEYS[7], pre .. 'q|' .. ARGV[1], '1')
  local seen = redis.call('HGET', KEYS[7], pre .. 's|' .. ARGV[4])
  if seen and tonumber(seen) >= now - horizon then return fin(2) end
  redis.call('HSET', KEYS[7], pre .. 's|' .. ARGV[4], ARGV[5])
  if t == 'share.viewed' then
    redis.call('HINCRBY', KEYS[7], pre .. 'c|' .. ARGV[7], 1)
  elseif t == 'share.revoked' then
    redis.call('HSETNX', KEYS[7], pre .. 'r|' .. ARGV[7], ARGV[8])
  elseif t == 'render.deleted' then
    redis.call('HSET', KEYS[7], pre .. 'd|', '1')
  end
  return fin(6)
end
local function drop()
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[8])
  redis.call('HSET', KEYS[1], 'deleted', '1')
end
local reply = 0
if not cur[2] then
  redis.call('HSET', KEYS[1], 'project', project)
  cur[2] = project
  local del = {}
  local fields = redis.call('HGETALL', KEYS[7])
  for i = 1, #fields, 2 do
    local f, v = fields[i], fields[i + 1]
    local p, kind, rest = string.match(f, '^([^|]*)|(.)|(.*)$')
    if p == project then
      del[#del + 1] = f
      if kind == 'c' then
        redis.call('HINCRBY', KEYS[4], rest, tonumber(v))
      elseif kind == 'r' then
        redis.call('HSETNX', KEYS[5], rest, v)
      elseif kind == 'd' then
        cur[3] = '1'
      elseif kind == 's' and tonumber(v) >= now - horizon then
        seen(rest, tonumber(v), now - horizon)
      end
    elseif kind ~= 'q' then
      del[#del + 1] = f
    end
  end
  for i = 1, #del, 500 do
    redis.call('HDEL', KEYS[7], unpack(del, i, math.min(i + 499, #del)))
  end
  if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('PEXPIRE', KEYS[6], horizon + 3600000) end
  if cur[3] then drop() end
  reply = foreign(0)
  if type(reply) == 'table' then redis.call('HSET', KEYS[1], 'reg', ARGV[1]) end
end
if cur[3] then
  if type(reply) == 'table' then reply[1] = 4 return fin(reply) end
  return fin(4)
end
if seenBefore(ARGV[4], now, horizon) then
  if type(reply) == 'table' then reply[1] = 2 return fin(reply) end
  return fin(2)
end
redis.call('PEXPIRE', KEYS[6], horizon + 3600000)
local changed = false
if t == 'share.viewed' then
  local v = redis.call('HGET', KEYS[3], ARGV[7])
  if v then
    redis.call('HSET', KEYS[3], ARGV[7], withViews(v, 1))
    changed = true
  else
    redis.call('HINCRBY', KEYS[4], ARGV[7], 1)
  end
elseif t == 'share.created' then
  if redis.call('HSETNX', KEYS[3], ARGV[7], ARGV[9]) == 1 then changed = true end
  if not cur[4] then set[#set + 1] = 'listed'; set[#set + 1] = '1'; changed = true end
elseif t == 'share.revoked' then
  if redis.call('HSETNX', KEYS[5], ARGV[7], ARGV[8]) == 1 then
    changed = redis.call('HEXISTS', KEYS[3], ARGV[7]) == 1
  end
elseif t == 'render.created' then
  if not cur[4] then set[#set + 1] = 'listed'; set[#set + 1] = '1'; changed = true end
elseif t == 'render.deleted' then
  drop()
  changed = true
end
if changed then set[#set + 1] = 'ver'; set[#set + 1] = ARGV[1] end
return fin(reply)
`)

// dedupeLua is the part of applyRender that reads and writes the dedupe
// table and the share records' view counts (see applyRender).
//
// seen(d, at, oldest) reports whether digest d is in the table at a time
// no earlier than oldest; if not, it records d at time at. seenBefore(d,
// now, horizon) is seen(d, now, now - horizon) that also looks in the old
// seen zset of a converted render. withViews(v, n) is record v (either
// version) with n more views; a version 1 record becomes version 2 and
// takes in the views clicks counted for it (unless AddViews made them
// negative).
//
// u(s, i, n) reads the n-byte big-endian unsigned integer at i of s and
// b6(v) writes v in 6 such bytes: with Redis's struct library, or in plain
// Lua where it is missing (the in-process Redis of `sharesd dev`,
// miniredis), which costs Redis ~10 µs more per event.
const dedupeLua = `
local D, E, SPLIT = 10, 16, 48
local u, b6
local hasStruct, st = pcall(function() return struct end)
if hasStruct and st then
  u = function(s, i, n)
    if n == 6 then return (st.unpack('>I6', s, i)) end
    return (st.unpack('>I4', s, i))
  end
  b6 = function(v) return st.pack('>I6', v) end
else
  u = function(s, i, n)
    local v = 0
    for k = i, i + n - 1 do v = v * 256 + string.byte(s, k) end
    return v
  end
  b6 = function(v)
    local t = {}
    for k = 6, 1, -1 do
      t[k] = string.char(v % 256)
      v = math.floor(v / 256)
    end
    return table.concat(t)
  end
end
local function shardOf(h, n)
  local lvl = 1
  while lvl * 2 <= n do lvl = lvl * 2 end
  local i = h % (lvl * 2)
  if i >= n then i = h % lvl end
  return i, lvl
end
local function trim(s, oldest)
  local p = 1
  while p < #s and u(s, p + D, 6) < oldest do p = p + E end
  if p == 1 then return s end
  return string.sub(s, p)
end
local function put(i, s)
  if s == '' then redis.call('HDEL', KEYS[6], i) else redis.call('HSET', KEYS[6], i, s) end
end
local function split(n, lvl, oldest)
  local x = n - lvl
  local a, b = {}, {}
  local s = trim(redis.call('HGET', KEYS[6], x) or '', oldest)
  for p = 1, #s, E do
    local e = string.sub(s, p, p + E - 1)
    if math.floor(u(e, 1, 4) / lvl) % 2 == 1 then b[#b + 1] = e else a[#a + 1] = e end
  end
  put(x, table.concat(a))
  put(n, table.concat(b))
  redis.call('HSET', KEYS[6], 'n', n + 1)
end
local function seen(d, at, oldest)
  local n = tonumber(redis.call('HGET', KEYS[6], 'n') or '1')
  local key = string.sub(d, 1, D)
  local i, lvl = shardOf(u(d, 1, 4), n)
  local s = redis.call('HGET', KEYS[6], i) or ''
  local p = string.find(s, key, 1, true)
  while p and (p - 1) % E ~= 0 do p = string.find(s, key, p + 1, true) end
  if p then
    if u(s, p + D, 6) >= oldest then return true end
    s = string.sub(s, 1, p - 1) .. string.sub(s, p + E)
  end
  s = trim(s, oldest) .. key .. b6(at)
  put(i, s)
  if n > 1 and seq % 4 == 0 then
    local j = (i + 1) % n
    local o = redis.call('HGET', KEYS[6], j)
    if o then
      local kept = trim(o, oldest)
      if #kept < #o then put(j, kept) end
    end
  end
  if #s > SPLIT * E then split(n, lvl, oldest) end
  return false
end
local function seenBefore(d, now, horizon)
  local lay = tonumber(cur[6])
  if lay > 0 then
    if now - horizon > lay then
      redis.call('HSET', KEYS[1], 'lay', '0')
      redis.call('UNLINK', KEYS[8])
    else
      local at = redis.call('ZSCORE', KEYS[8], d)
      if at and tonumber(at) >= now - horizon then return true end
    end
  end
  return seen(d, now, now - horizon)
end
local function withViews(v, n)
  if string.byte(v, 1) ~= 2 then
    local early = tonumber(redis.call('HGET', KEYS[4], ARGV[7]) or '0')
    if early >= 0 then
      n = n + early
      redis.call('HDEL', KEYS[4], ARGV[7])
    end
    v = '\2' .. b6(0) .. string.sub(v, 2)
  end
  return '\2' .. b6(u(v, 2, 6) + n) .. string.sub(v, 8)
end
`

// applyProject applies project.updated.
//
//	KEYS  project, seen
//	ARGV  seq, event digest, stream time ms, horizon ms, has base (1|0), base
var applyProject = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'seq')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 1 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1])
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[4])))
if redis.call('ZADD', KEYS[2], 'NX', now, ARGV[2]) == 0 then return 2 end
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]) + 3600000)
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'base', ARGV[6], 'ver', ARGV[1])
else
  redis.call('HDEL', KEYS[1], 'base')
  redis.call('HSET', KEYS[1], 'ver', ARGV[1])
end
return 0
`)

// applyKey applies apikey.created and apikey.revoked. The by-hash index
// maps a key hash to "<revoked 0|1>:<env>:<projectId>:<keyId>", and byreg
// maps it to the stream sequence of that key id's creation.
//
// A key id's first apikey.created decides it (later ones change nothing),
// and a revocation is final. A hash belongs for good to the key id whose
// creation comes first in the stream: a creation whose hash is owned by an
// earlier one answers HashTaken, and its key id stays without a key. The
// partitions of the stream are applied independently, so the creations of
// one hash can be applied out of stream order: one that comes earlier in
// the stream than the hash's owner takes the hash over and answers the
// owner's sequence, for the caller to dead-letter as HashTaken, which is
// what applying the stream in order would have done. A key id keeps the
// sequence of its creation ("reg") and the one it took over ("disp"), so a
// redelivery answers as the first delivery did. Entries written before
// byreg existed count as the earliest.
//
//	KEYS  byhash, key record, byreg
//	ARGV  seq, type, projectId, keyId, hash, env
var applyKey = redis.NewScript(`
local seq = tonumber(ARGV[1])
local function owner(hash)
  local o = redis.call('HGET', KEYS[1], hash)
  return o and string.match(o, '^[^:]*:[^:]*:[^:]*:(.*)$')
end
local cur = redis.call('HMGET', KEYS[2], 'seq', 'project', 'hash', 'reg', 'disp')
if cur[1] and tonumber(cur[1]) >= seq then
  if cur[2] and cur[2] ~= ARGV[3] then return 5 end
  if ARGV[2] ~= 'apikey.created' or tonumber(cur[4] or '0') ~= seq then return 1 end
  local o = 1
  if owner(cur[3]) ~= ARGV[4] then o = 7 end
  if cur[5] then return {o, cur[5]} end
  return o
end
redis.call('HSET', KEYS[2], 'seq', ARGV[1])
if cur[2] and cur[2] ~= ARGV[3] then return 3 end
if not cur[2] then redis.call('HSET', KEYS[2], 'project', ARGV[3]) end
local out = 0
if ARGV[2] == 'apikey.created' then
  if cur[3] then return 0 end
  redis.call('HSET', KEYS[2], 'hash', ARGV[5], 'env', ARGV[6], 'reg', ARGV[1])
  if owner(ARGV[5]) then
    local reg = redis.call('HGET', KEYS[3], ARGV[5]) or '0'
    if tonumber(reg) < seq then return 7 end
    redis.call('HSET', KEYS[2], 'disp', reg)
    out = {0, reg}
  end
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[1])
else
  redis.call('HSET', KEYS[2], 'revoked', '1')
end
local k = redis.call('HMGET', KEYS[2], 'hash', 'env', 'revoked')
if k[1] and k[2] and (out ~= 0 or (owner(k[1]) or ARGV[4]) == ARGV[4]) then
  redis.call('HSET', KEYS[1], k[1], (k[3] or '0') .. ':' .. k[2] .. ':' .. ARGV[3] .. ':' .. ARGV[4])
end
return out
`)

// readRender reads one render's list in one step. It returns nil when the
// render is not listed in project, {project, seq, ver, rep} when ver equals
// the caller's (or the caller has "*"), else {project, seq, ver, rep,
// packed}, where rep counts the render's repairs (see swapRender) and
// packed holds, per share in no particular order (the reader sorts them),
// netstrings of id, record, the views clicks holds for it ("0" when none)
// and its revocation ("-" when none). It reads renders of either layout.
//
//	KEYS  render, recs, clicks, revoked
//	ARGV  projectId, ver the caller has ("" for none, "*" for any)
var readRender = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'project', 'seq', 'ver', 'listed', 'deleted', 'rep')
if not r[4] or r[5] or r[1] ~= ARGV[1] then return false end
local ver, rep = r[3] or '0', r[6] or '0'
if ver == ARGV[2] or ARGV[2] == '*' then return {r[1], r[2], ver, rep} end
local recs = redis.call('HGETALL', KEYS[2])
local function byID(key)
  local m, kv = {}, redis.call('HGETALL', key)
  for i = 1, #kv, 2 do m[kv[i]] = kv[i + 1] end
  return m
end
local clicks, revs = byID(KEYS[3]), byID(KEYS[4])
local out = {}
for i = 1, #recs, 2 do
  local id, rec = recs[i], recs[i + 1]
  local c, rv = clicks[id] or '0', revs[id]
  out[#out + 1] = #id .. ':' .. id .. #rec .. ':' .. rec .. #c .. ':' .. c
  if rv then out[#out + 1] = #rv .. ':' .. rv else out[#out + 1] = '-' end
end
return {r[1], r[2], ver, rep, table.concat(out)}
`)

// activate makes ARGV[1] the active generation if the active one is still
// ARGV[2] ("" for none), and clears building/handover when they name it.
//
//	KEYS  ctl
var activate = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'active') or ''
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'active', ARGV[1])
for _, f in ipairs({'building', 'handover'}) do
  if redis.call('HGET', KEYS[1], f) == ARGV[1] then redis.call('HDEL', KEYS[1], f) end
end
return 1
`)

// swapRender moves a rebuilt render's scratch keys over the live ones if the
// scratch copy has applied at least as far as the live one. The copy may
// differ from the live keys at the same versions (it repairs them), so its
// render hash counts one repair more than the live one ("rep"), which
// changes the list's ETag.
//
//	KEYS  live keys (n), then scratch keys (n), the render hash first in each
var swapRender = redis.NewScript(`
local n = #KEYS / 2
local live = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local scratch = tonumber(redis.call('HGET', KEYS[n + 1], 'seq') or '0')
if scratch < live then return live end
if redis.call('EXISTS', KEYS[n + 1]) == 1 then
  redis.call('HSET', KEYS[n + 1], 'rep', tonumber(redis.call('HGET', KEYS[1], 'rep') or '0') + 1)
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[i + n]) == 1 then
    redis.call('RENAME', KEYS[i + n], KEYS[i])
  else
    redis.call('DEL', KEYS[i])
  end
end
return -1
`)

var allScripts = []*redis.Script{applyRender, applyProject, applyKey, readRender, activate, swapRender}
