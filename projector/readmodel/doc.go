// Package readmodel is the Redis read model of share lists: the key layout,
// the Lua scripts that apply events to it and the queries that read it. It
// is the only code that spells a Redis key.
//
// Every key lives in a generation, a name such as "gmxyz123" (see NewGen).
// The API reads the generation named by the control hash's "active" field; a
// full rebuild writes a new generation beside it and swaps the pointer in one
// step. Keys of generation G:
//
//	sharesd:G:{R}:render   hash    project, seq (last applied stream sequence),
//	                               ver (sequence of the last change to the list),
//	                               listed ("1" once render.created or
//	                               share.created applied), deleted ("1"),
//	                               reg (sequence of the event that registered
//	                               it, kept only when other projects' events
//	                               were held for it), lay (layout: "0", or the
//	                               stream time at which a render of the earlier
//	                               layout was converted, see below), rep (how
//	                               often rebuild -render repaired it: part of
//	                               the ETag's salt)
//	sharesd:G:{R}:recs     hash    shareId -> share record with its view count
//	                               (compact binary, see record.go); List
//	                               sorts them newest first, ties by id
//	                               descending
//	sharesd:G:{R}:clicks   hash    shareId -> views counted apart from the
//	                               share's record, which the list adds to its
//	                               count: those that came before the share
//	sharesd:G:{R}:revoked  hash    shareId -> first revocation (revokedAt, reason)
//	sharesd:G:{R}:dedupe   hash    the render's dedupe table: 16-byte entries
//	                               (10 bytes of the event id's SHA-256, stream
//	                               time in ms) packed into shards "0".."n-1"
//	                               addressed by linear hashing ("n" fields when
//	                               n > 1); entries older than the horizon are
//	                               trimmed from the shards each write touches,
//	                               and the key expires horizon + 1h after its
//	                               last write (with the project seen sets, the
//	                               only read-model keys with a TTL)
//	sharesd:G:{R}:pending  hash    what each project sent before the render was
//	                               registered (see applyRender): "P|q|<seq>",
//	                               "P|s|<digest>", "P|c|<shareId>", "P|r|<shareId>",
//	                               "P|d|"; after registration only the other
//	                               projects' "q" fields stay (for a redelivered
//	                               registration to dead-letter them again)
//
// A render written by an earlier version also has, until its next write
// converts it, sharesd:G:{R}:shares (zset: shareId by createdAt) and
// version 1 records whose views are counted in clicks; and, until the
// horizon has passed over them, sharesd:G:{R}:seen (zset: 16-byte digests
// by stream time), which the scripts still consult. The reads understand
// both layouts.
//
//	sharesd:G:{p:P}:project hash   base (share base URL), seq, ver
//	sharesd:G:{p:P}:seen   zset    16-byte SHA-256 prefix of each project event
//	                               id by stream time, trimmed and expiring like
//	                               a render's dedupe table
//	sharesd:G:{keys}:byhash hash   SHA-256 of an API key -> "revoked:env:project:keyId";
//	                               a hash belongs for good to the key id whose
//	                               creation comes first in the stream
//	sharesd:G:{keys}:byreg hash    SHA-256 of an API key -> stream sequence of
//	                               its owner's creation (none: written by an
//	                               earlier version, counts as the earliest)
//	sharesd:G:{keys}:key:K hash    seq, project, hash, env, revoked, reg (the
//	                               sequence of K's creation), disp (the owner's
//	                               creation K took the hash from)
//
// where R is a render id, P a project id and K an API key id. The braces are
// Redis Cluster hash tags: every key of one render hashes to one slot, so one
// script updates them atomically. Control keys, outside any generation:
//
//	sharesd:{meta}:ctl     hash    active, building, handover (generation names),
//	                               heal (rebuild the active one), partitions (the
//	                               deployment's number), pos:G:N (resume position of
//	                               partition N of generation G; a bare pos:G, from
//	                               older projectors, counts for every partition),
//	                               stream:G (creation time of the stream G was
//	                               built from: a recreated stream is noticed)
//	sharesd:{meta}:lease:N string  token of the projector applying partition N (TTL)
//	sharesd:{meta}:members zset    running projectors' tokens by membership expiry (ms)
//	                               (see partitions.go)
//	sharesd:applied        pub/sub channel: the projector's position after each batch
//	                       (sharded pub/sub, SPUBLISH, on a Redis Cluster); payload
//	                       "<seq>[ keys][ p=<parts>][ c=<ids>]": "keys" when the batch
//	                       held an apikey.created or apikey.revoked (never a key or its
//	                       hash); "p=" the partitions it covered (absent: all); "c=" the
//	                       ChangeIDs (32-bit FNV-1a of the lowercase id, base 36) of the
//	                       render of each render and share event and the project of each
//	                       project.updated — empty when none, absent when more than 512
//	                       (anything may have changed). "0 c=<ids>" (AnnounceChanged)
//	                       names renders changed outside a batch (rebuild -render);
//	                       "switch" when another generation became active or the read
//	                       model vanished. Readers ignore words they do not know.
//	sharesd:leases         pub/sub channel (sharded on a cluster): "changed" when a
//	                       projector gave up leases or joined, so the others share
//	                       the partitions again at once (FollowLeases)
//	sharesd:{fence:N}      string  Redis Cluster only: a counter bumped on one
//	                               master before WAIT (see Store.Apply); N is
//	                               chosen so that the key lies on that master
//
// On a Redis Cluster (New given a *redis.ClusterClient) SCAN-based code
// (Generations, DropGen) and CONFIG GET run on every master, scripts are
// loaded on every node, and Apply waits for a replica of every master it
// wrote to before it returns (see Store.Apply).
package readmodel
