package readmodel

import "github.com/redis/go-redis/v9"

// Every write script is guarded by the entity's last applied stream
// sequence, so running one twice (a go-redis retry after a network error, a
// redelivery after a crash, a replay) changes nothing the second time. A
// seen set is trimmed by stream time on every write and expires an hour past
// the horizon after its last write, so a render that goes quiet does not
// keep its digests forever. A redelivered event of another project answers
// StaleMismatch rather than Stale, so its dead letter is not lost when the
// first copy never made it. Script replies are outcomes (see Outcome).

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
//	KEYS  render, shares, recs, clicks, revoked, seen, pending (see renderKeysOf)
//	ARGV  seq, type, projectId, event digest, stream time ms, horizon ms,
//	      shareId, createdAt ms | revocation, record
var applyRender = redis.NewScript(`
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
// maps a key hash to "<revoked 0|1>:<env>:<projectId>:<keyId>". A hash
// belongs for good to the first key id that registered it: apikey.created
// of a hash that another key id owns changes nothing and answers HashTaken,
// before any other check, so a redelivery answers the same. The first
// apikey.created of a key id wins, and a revocation is final.
//
//	KEYS  byhash, key record
//	ARGV  seq, type, projectId, keyId, hash, env
var applyKey = redis.NewScript(`
if ARGV[2] == 'apikey.created' then
  local owner = redis.call('HGET', KEYS[1], ARGV[5])
  if owner and string.match(owner, '^[^:]*:[^:]*:[^:]*:(.*)$') ~= ARGV[4] then return 7 end
end
local seq = tonumber(ARGV[1])
local cur = redis.call('HMGET', KEYS[2], 'seq', 'project')
if cur[1] and tonumber(cur[1]) >= seq then
  if cur[2] and cur[2] ~= ARGV[3] then return 5 end
  return 1
end
redis.call('HSET', KEYS[2], 'seq', ARGV[1])
if cur[2] and cur[2] ~= ARGV[3] then return 3 end
if not cur[2] then redis.call('HSET', KEYS[2], 'project', ARGV[3]) end
if ARGV[2] == 'apikey.created' then
  if redis.call('HSETNX', KEYS[2], 'hash', ARGV[5]) == 0 then return 0 end
  redis.call('HSET', KEYS[2], 'env', ARGV[6])
else
  redis.call('HSET', KEYS[2], 'revoked', '1')
end
local k = redis.call('HMGET', KEYS[2], 'hash', 'env', 'revoked')
if k[1] and k[2] then
  redis.call('HSET', KEYS[1], k[1], (k[3] or '0') .. ':' .. k[2] .. ':' .. ARGV[3] .. ':' .. ARGV[4])
end
return 0
`)

// readRender reads one render's list in one step. It returns nil when the
// render is not listed in project, {project, seq, ver} when ver equals the
// caller's (or the caller has "*"), else {project, seq, ver, packed} where packed holds, per share
// newest first, netstrings of id, record, revocation ("-" when none) and
// click count.
//
//	KEYS  render, shares, recs, clicks, revoked
//	ARGV  projectId, ver the caller has ("" for none, "*" for any)
var readRender = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'project', 'seq', 'ver', 'listed', 'deleted')
if not r[4] or r[5] or r[1] ~= ARGV[1] then return false end
local ver = r[3] or '0'
if ver == ARGV[2] or ARGV[2] == '*' then return {r[1], r[2], ver} end
local ids = redis.call('ZREVRANGE', KEYS[2], 0, -1)
local out = {}
local n = #ids
for i = 1, n, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, n) do chunk[#chunk + 1] = ids[j] end
  local recs = redis.call('HMGET', KEYS[3], unpack(chunk))
  local clicks = redis.call('HMGET', KEYS[4], unpack(chunk))
  local revs = redis.call('HMGET', KEYS[5], unpack(chunk))
  for j = 1, #chunk do
    local id, rec, c, rv = chunk[j], recs[j] or '', clicks[j] or '0', revs[j]
    out[#out + 1] = #id .. ':' .. id .. #rec .. ':' .. rec .. #c .. ':' .. c
    if rv then out[#out + 1] = #rv .. ':' .. rv else out[#out + 1] = '-' end
  end
end
return {r[1], r[2], ver, table.concat(out)}
`)

// setPos raises a generation's resume position, never lowers it.
//
//	KEYS  ctl
//	ARGV  field, position
var setPos = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or tonumber(cur) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 0
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

// lease takes or renews the projector lease for token ARGV[1] for ARGV[2] ms.
//
//	KEYS  lease
var lease = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseLease deletes the projector lease if token ARGV[1] holds it.
//
//	KEYS  lease
var releaseLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// swapRender moves a rebuilt render's scratch keys over the live ones if the
// scratch copy has applied at least as far as the live one.
//
//	KEYS  live keys (n), then scratch keys (n), the render hash first in each
var swapRender = redis.NewScript(`
local n = #KEYS / 2
local live = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local scratch = tonumber(redis.call('HGET', KEYS[n + 1], 'seq') or '0')
if scratch < live then return live end
for i = 1, n do
  if redis.call('EXISTS', KEYS[i + n]) == 1 then
    redis.call('RENAME', KEYS[i + n], KEYS[i])
  else
    redis.call('DEL', KEYS[i])
  end
end
return -1
`)

var allScripts = []*redis.Script{applyRender, applyProject, applyKey, readRender, setPos, activate, lease, releaseLease, swapRender}
