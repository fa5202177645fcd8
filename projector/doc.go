// Package projector applies the CRAFTKIT stream to the Redis read model:
// decode, apply atomically with the event's stream sequence, move on. It
// also owns dead-lettering, the resume position, rebuilds and verification.
//
//	JetStream CRAFTKIT                    Redis (generation G)
//	──────────────────                    ─────────────────────────────────────
//	seq 1 2 3 … n                         sharesd:G:{R}:render  seq, ver, project
//	       │ ordered consumer from pos+1   sharesd:G:{R}:shares / recs / clicks / …
//	       ▼                              sharesd:{meta}:ctl    active, pos:G:N, …
//	┌─────────────┐  batch (≤512)   ┌────────────────────────────────────────┐
//	│ feed chan   │───────────────▶│ one pipeline:                          │
//	└─────────────┘  decode each    │   EVALSHA apply (one per event, guarded │
//	       │ bad → CRAFTKIT_         │     by the entity's last applied seq)   │
//	       │ DEADLETTER (own hdrs)   │   setPartPos(G, end of PREVIOUS batch) │
//	       ▼                         │   PUBLISH sharesd:applied <seq>         │
//	  next batch ◀───────────────────│   HGETALL ctl (handover? flushed?)     │
//	                                └────────────────────────────────────────┘
//
// # Exactly once
//
// The read model is a fold of the stream, and every event takes effect once
// however often it is delivered:
//
//   - Each event's effect and its stream sequence are written by one Lua
//     script, atomically, under the render's hash tag. The script does
//     nothing (outcome Stale) when the render's recorded sequence is at or
//     above the event's. Events of a render are applied in stream order, so
//     "recorded sequence ≥ s" means "every event of this render up to s has
//     taken effect". Re-running a script (a go-redis retry after a network
//     error, a redelivery, a replay) is therefore harmless.
//   - The resume position is only a hint of where to start: it is saved
//     after the batch it covers has been applied in full (in the next
//     batch's pipeline, or on shutdown), so it never runs ahead of the data.
//     A crash anywhere re-delivers at most the events after it, and the
//     guard skips the ones already applied. Nothing is acknowledged to
//     JetStream at all: the ordered consumer keeps no server-side state, so
//     there is no second position that could drift from the data.
//   - On a Redis Cluster, replication is asynchronous: a master that dies
//     can be replaced by its replica without its last writes, while the
//     position, saved on another master, keeps its value; resuming from it
//     would skip the lost events. So Store.Apply returns only once a
//     replica of every master the batch wrote to has acknowledged the
//     writes (a write to that master's fence key, then WAIT 1 on the same
//     connection: the acknowledgement covers every earlier write of that
//     master, also those of an earlier attempt that this one found already
//     applied). Only then is the batch done, and only a done batch's end is
//     saved as the position. When no replica answers within a second,
//     Apply fails (ErrNotReplicated) like any failed write: the run starts
//     again from the saved position, and the events are applied again
//     (stale: harmless) until a replica acknowledges them. Stalling beats
//     advancing past writes that a failover could lose. A master with no
//     replica left (its replica failed, or it took over from its failed
//     master) cannot be failed over and is not waited for, so losing a
//     replica does not stop projection. A position lost with the control
//     hash's master only moves back, which is harmless. The guarantee is
//     WAIT's: a replica that acknowledged is the one the cluster promotes
//     (with one replica per master, the only candidate).
//   - Several projectors share the stream by partition (see
//     partitions.go): each applies only the partitions whose leases it
//     holds and saves their positions with a script that checks those
//     leases first, so a projector that lost one (paused past the lease)
//     can never move a position its successor relies on. Its late writes
//     meet the same per-render sequence guard as any redelivery. The
//     guarantees above hold per partition: a render's events all fall in
//     one.
//   - A failed Redis write ends the run; the loop backs off and starts a new
//     ordered consumer from the saved position, never from where the failed
//     consumer had got to, so no event is skipped.
//   - Publishers that retry after JetStream's 2-minute Nats-Msg-Id window
//     store an event twice under two sequences. Each script keeps a set of
//     event-id digests (16 bytes of SHA-256) scored by stream time and drops
//     an id seen within the dedupe horizon (24 h by default). Ageing goes by
//     the stream's timestamps, not the clock, so a replay decides exactly as
//     the live run did.
//   - A render's events before its registration (render.created or
//     share.created) are held apart per project, under the same guard. The
//     registering script moves its project's part into the render and
//     answers the sequences of the other projects' held events; the
//     projector reads those back from the stream and dead-letters them. The
//     sequences stay recorded, so a registration redelivered after a crash
//     lists them again and no dead letter is lost; the dead-letter mark
//     (see deadletter.go) keeps the second copy out.
//
// # Generations, rebuilds and self-healing
//
// All keys live in a generation; the control hash names the active one.
// The API resolves it in the same round trip as the data it reads. A full
// rebuild writes a new generation from sequence 1 beside the active one;
// once it has reached the stream's head it is handed over to the live
// projectors: the first takes every partition (see partitions.go), stops
// writing the old generation, brings the new one up to the highest
// position of the old one's partitions and only then makes it active,
// so no reader sees a count lower than one it saw before. Without a live
// projector the rebuild activates the generation itself. The old generation
// is deleted after a grace period with SCAN and UNLINK.
//
// When the control hash disappears (FLUSHALL, Redis restarted without
// persistence) the projector notices on its next batch or idle second and
// builds a new generation from the start; until it is active the API has no
// generation to read and answers 503. When the stream's last sequence is
// below the recorded position, or its creation time changed, the stream was
// restored or recreated: the projector builds a new generation while the old
// one keeps serving.
//
// A single render is rebuilt into scratch keys under the same hash tag and
// swapped over the live keys by one script, only once the scratch copy's
// sequence is at least the live one; the live projector can keep applying
// the render's events meanwhile, because both writers apply in stream order
// under the same guard.
package projector
