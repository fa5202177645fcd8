package readmodel

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
)

// Errors callers branch on.
var (
	// ErrNotFound: no such render (or key) in the active generation.
	ErrNotFound = errors.New("readmodel: not found")
	// ErrUnavailable: there is no active generation yet (a rebuild from
	// zero is in progress); answers would be incomplete.
	ErrUnavailable = errors.New("readmodel: no active generation")
)

// DefaultHorizon is how long event ids are remembered for deduplication.
const DefaultHorizon = 24 * time.Hour

// Store is the Redis read model: the writes of the projector and the reads
// of the API. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	horizon time.Duration
	gen     atomic.Pointer[string] // last active generation seen by a read
	fences  sync.Map               // master address -> its fence key (cluster only)
	parts   int                    // partitions (see SetPartitions)
}

// New returns a Store on rdb that remembers event ids for horizon. rdb is a
// *redis.Client for a single node or a *redis.ClusterClient for a Redis
// Cluster; New makes a cluster client look at the cluster again whenever a
// command fails, so that it follows a failover at once.
func New(rdb redis.UniversalClient, horizon time.Duration) *Store {
	if horizon <= 0 {
		horizon = DefaultHorizon
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		cc.AddHook(reloadOnError{cc})
	}
	return &Store{rdb: rdb, horizon: horizon}
}

// LoadScripts loads every script into Redis's script cache.
func (s *Store) LoadScripts(ctx context.Context) error {
	for _, sc := range append(allScripts[:len(allScripts):len(allScripts)], partitionScripts...) {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load scripts: %w", err)
		}
	}
	return nil
}

// evalsha runs sc by hash in a pipeline; pipelines cannot fall back to EVAL,
// so callers reload scripts and retry when isNoScript(err).
func evalsha(ctx context.Context, p redis.Pipeliner, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	return sc.EvalSha(ctx, p, keys, args...)
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// Outcome is what applying one event did.
type Outcome int

// Outcomes of applying an event; the values are the scripts' replies.
const (
	Applied   Outcome = 0 // it took effect (or was a no-op by the contract)
	Stale     Outcome = 1 // its sequence was already applied: a redelivery
	Duplicate Outcome = 2 // its event id was seen within the horizon
	Mismatch  Outcome = 3 // its projectId is not the entity's project
	Ignored   Outcome = 4 // the render was deleted
	// StaleMismatch: a redelivered event that was a Mismatch.
	StaleMismatch Outcome = 5
	// Pending: the render is not registered yet; the event is held apart
	// for its project until a render.created or share.created registers it.
	Pending Outcome = 6
	// HashTaken: an apikey.created whose key hash a key id registered
	// earlier in the stream owns.
	HashTaken Outcome = 7
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Stale:
		return "stale"
	case Duplicate:
		return "duplicate"
	case Mismatch:
		return events.CodeProjectMismatch
	case Ignored:
		return "render_deleted"
	case StaleMismatch:
		return "stale_" + events.CodeProjectMismatch
	case Pending:
		return "pending"
	case HashTaken:
		return events.CodeKeyHashTaken
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// A Result is what applying one event did, with the stream sequences of
// events applied before it that it rejects: for the registration of a
// render, other projects' events held pending for the render (see
// applyRender); for an apikey.created, the creation of the key id that
// owned its hash but comes later in the stream (see applyKey). The caller
// dead-letters those too; a redelivery lists them again.
type Result struct {
	Outcome Outcome
	Rejects []uint64
}

// Op is one event at its place in the stream.
type Op struct {
	Seq   uint64    // stream sequence
	Time  time.Time // the stream's timestamp: deduplication ages by it, so replays agree
	Event events.Event
}

// Control is the projector's control state.
type Control struct {
	Active   string                    // generation the API reads ("" while none)
	Building string                    // generation a full rebuild is writing
	Handover string                    // generation waiting for the live projectors to take over
	Heal     bool                      // the stream went backwards under the active generation: rebuild it
	Pos      map[string]uint64         // resume position of each generation: the lowest of its partitions'
	Part     map[string]map[int]uint64 // resume position of each partition of each generation (see PosOf)
	Streams  map[string]string         // the stream each generation was built from
	bare     map[string]uint64         // a position saved for every partition at once (older projectors)
}

// Present reports whether the control state exists at all; it is missing
// after Redis lost its data.
func (c Control) Present() bool {
	return c.Active != "" || c.Building != "" || len(c.Pos) > 0 || len(c.Part) > 0
}

// parseControl reads the control hash of a deployment of n partitions.
func parseControl(m map[string]string, n int) Control {
	c := Control{Active: m[fieldActive], Building: m[fieldBuilding], Handover: m[fieldHandover], Heal: m[fieldHeal] != "",
		Pos: map[string]uint64{}, Part: map[string]map[int]uint64{}, bare: map[string]uint64{}, Streams: map[string]string{}}
	for k, v := range m {
		if g, ok := strings.CutPrefix(k, posField("")); ok {
			pos, _ := strconv.ParseUint(v, 10, 64)
			g, part, isPart := strings.Cut(g, ":")
			if !isPart {
				c.bare[g] = pos
				continue
			}
			p, err := strconv.Atoi(part)
			if err != nil {
				continue
			}
			if c.Part[g] == nil {
				c.Part[g] = map[int]uint64{}
			}
			c.Part[g][p] = pos
		} else if g, ok := strings.CutPrefix(k, streamField("")); ok {
			c.Streams[g] = v
		}
	}
	for g := range c.bare {
		c.Pos[g] = c.MinPos(g, n)
	}
	for g := range c.Part {
		c.Pos[g] = c.MinPos(g, n)
	}
	return c
}

// ReadControl reads the control state.
func (s *Store) ReadControl(ctx context.Context) (Control, error) {
	m, err := s.rdb.HGetAll(ctx, ctlKey()).Result()
	if err != nil {
		return Control{}, fmt.Errorf("read control: %w", err)
	}
	return parseControl(m, s.Partitions()), nil
}

// Apply applies ops to generation gen in one round trip, in order. When
// checkpoint > 0 it also raises gen's resume position to it: pass the last
// sequence of a batch that has already been applied in full, never of this
// one (a pipeline is not atomic). When announce is set, the last sequence is
// published for readers waiting on ?minSeq, flagged when the batch held a
// key event (see doc.go): on a single node in the same round trip, after
// the writes; on a Redis Cluster, whose pipeline runs on every master at
// once, in a round trip of its own once the writes are replicated, so no
// reader hears of a write before it can read it. Apply returns one Result
// per op and the control state read in the same round trip.
//
// On a Redis Cluster, Apply returns only once a replica of every master
// that ops wrote to has acknowledged the writes, and fails with
// ErrNotReplicated when one did not: a failover can then no longer lose
// them, so the caller may save the batch's end as a position (see
// projector/doc.go).
func (s *Store) Apply(ctx context.Context, gen string, ops []Op, checkpoint uint64, announce bool) ([]Result, Control, error) {
	return s.ApplyParts(ctx, gen, ops, Checkpoint{Seq: checkpoint}, announce)
}

// ApplyParts is Apply for a batch of some partitions: cp names them and the
// lease token that fences their positions; when a lease has moved on, the
// position is not saved and ApplyParts fails with ErrFenced. The
// announcement names the partitions (see doc.go).
func (s *Store) ApplyParts(ctx context.Context, gen string, ops []Op, cp Checkpoint, announce bool) ([]Result, Control, error) {
	announce = announce && len(ops) > 0
	inline := announce && s.cluster() == nil
	out, ctl, err := s.apply(ctx, gen, ops, cp, inline)
	if isNoScript(err) { // Redis restarted or flushed its script cache, or a replica took over
		if err := s.LoadScripts(ctx); err != nil {
			return nil, Control{}, err
		}
		out, ctl, err = s.apply(ctx, gen, ops, cp, inline)
	}
	if err == nil && s.cluster() != nil {
		err = s.replicated(ctx, opKeys(gen, ops))
		if err == nil && announce {
			err = s.announce(ctx, s.rdb, announcement(ops, cp.Parts)).Err()
		}
	}
	if err != nil {
		return nil, Control{}, fencedErr(err)
	}
	return out, ctl, nil
}

func (s *Store) apply(ctx context.Context, gen string, ops []Op, cp Checkpoint, announce bool) ([]Result, Control, error) {
	p := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ops))
	for i := range ops {
		cmds[i] = s.queue(ctx, p, gen, &ops[i])
	}
	if cp.Seq > 0 {
		s.queueCheckpoint(ctx, p, gen, cp)
	}
	if announce {
		s.announce(ctx, p, announcement(ops, cp.Parts))
	}
	ctlCmd := p.HGetAll(ctx, ctlKey())
	if _, err := p.Exec(ctx); err != nil {
		return nil, Control{}, err
	}
	out := make([]Result, len(ops))
	for i, c := range cmds {
		r, err := parseResult(c)
		if err != nil {
			return nil, Control{}, fmt.Errorf("apply seq %d: %w", ops[i].Seq, err)
		}
		out[i] = r
	}
	return out, parseControl(ctlCmd.Val(), s.Partitions()), nil
}

// parseResult reads a write script's reply: an outcome, or {outcome,
// rejected sequence, ...} (see Result).
func parseResult(c *redis.Cmd) (Result, error) {
	v, err := c.Result()
	if err != nil {
		return Result{}, err
	}
	switch v := v.(type) {
	case int64:
		return Result{Outcome: Outcome(v)}, nil
	case []any:
		if len(v) == 0 {
			return Result{}, errors.New("empty script reply")
		}
		o, ok := v[0].(int64)
		if !ok {
			return Result{}, fmt.Errorf("script reply starts with %T, want an outcome", v[0])
		}
		r := Result{Outcome: Outcome(o), Rejects: make([]uint64, 0, len(v)-1)}
		for _, x := range v[1:] {
			s, _ := x.(string)
			seq, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return Result{}, fmt.Errorf("script reply: rejected sequence %q", s)
			}
			r.Rejects = append(r.Rejects, seq)
		}
		return r, nil
	}
	return Result{}, fmt.Errorf("script reply of type %T", v)
}

// digest is the 16-byte prefix of the SHA-256 of an event id: what the
// dedupe sets store instead of ids of up to 128 characters.
func digest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return string(sum[:16])
}

// opKeys returns, for each op, the first key its script writes: one key
// per slot it touches.
func opKeys(gen string, ops []Op) []string {
	keys := make([]string, len(ops))
	for i := range ops {
		ev := ops[i].Event
		switch d := ev.Data.(type) {
		case *events.APIKeyCreated:
			keys[i] = keyKeys(gen, d.KeyID)[0]
		case *events.APIKeyRevoked:
			keys[i] = keyKeys(gen, d.KeyID)[0]
		case *events.ProjectUpdated:
			keys[i] = projectKey(gen, ev.ProjectID)
		default:
			keys[i] = renderKeysOf(gen, ev.RenderID)[kRender]
		}
	}
	return keys
}

func (s *Store) queue(ctx context.Context, p redis.Pipeliner, gen string, op *Op) *redis.Cmd {
	ev := op.Event
	now := op.Time.UnixMilli()
	horizon := s.horizon.Milliseconds()
	switch d := ev.Data.(type) {
	case *events.APIKeyCreated:
		return evalsha(ctx, p, applyKey, keyKeys(gen, d.KeyID), op.Seq, string(ev.Type), ev.ProjectID, d.KeyID, d.KeyHash, d.Environment)
	case *events.APIKeyRevoked:
		return evalsha(ctx, p, applyKey, keyKeys(gen, d.KeyID), op.Seq, string(ev.Type), ev.ProjectID, d.KeyID, "", "")
	case *events.ProjectUpdated:
		has, base := "0", ""
		if d.ShareBase != nil {
			has, base = "1", *d.ShareBase
		}
		return evalsha(ctx, p, applyProject, projectKeys(gen, ev.ProjectID), op.Seq, digest(ev.ID), now, horizon, has, base)
	}
	args := []any{op.Seq, string(ev.Type), ev.ProjectID, digest(ev.ID), now, horizon}
	switch d := ev.Data.(type) {
	case *events.ShareCreated:
		args = append(args, d.ShareID, events.Millis(d.CreatedAt), encodeShare(d))
	case *events.ShareRevoked:
		args = append(args, d.ShareID, encodeRevocation(d))
	case *events.ShareViewed:
		args = append(args, d.ShareID)
	}
	return evalsha(ctx, p, applyRender, renderKeysOf(gen, ev.RenderID).slice(), args...)
}
