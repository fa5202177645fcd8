package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// statusReport is what `sharesd status` shows, and its -json form.
type statusReport struct {
	Stream          streamStatus     `json:"stream"`
	Active          *genStatus       `json:"active"`   // nil while no generation is active
	Building        *genStatus       `json:"building"` // nil unless a full rebuild is writing one
	Handover        *genStatus       `json:"handover"` // nil unless a rebuild waits for the live projector
	DeadLetters     *uint64          `json:"deadLetters"`
	NotStored       int              `json:"deadLettersNotStored"` // bad events the dead-letter stream refused, recorded instead
	LeaseHeld       bool             `json:"projectorLeaseHeld"`   // some projector holds a partition lease
	PartitionCount  int              `json:"partitionCount"`       // the deployment's, as Redis records it (0: none yet)
	Partitions      []partStatus     `json:"partitions"`
	Generations     map[string]int64 `json:"generations"` // keys of each generation in Redis
	MaxmemoryPolicy string           `json:"maxmemoryPolicy"`
	EvictionSafe    bool             `json:"evictionSafe"`
	HistoryRisks    []string         `json:"historyRisks"`
	ManualRisks     []string         `json:"manualHistoryRisks"`
	Warnings        []string         `json:"warnings"`
}

// partStatus is one partition of the active generation: the projector
// whose lease it is ("" for none), its position and the stream sequences
// between the position and the stream's head.
type partStatus struct {
	Partition int    `json:"partition"`
	Owner     string `json:"owner"`
	Position  uint64 `json:"position"`
	Lag       int64  `json:"lag"`
}

type streamStatus struct {
	Name     string `json:"name"`
	FirstSeq uint64 `json:"firstSeq"`
	LastSeq  uint64 `json:"lastSeq"`
	Msgs     uint64 `json:"msgs"`
	Bytes    uint64 `json:"bytes"`
}

// genStatus is one generation's place in the stream. Lag is the stream's
// last sequence minus the position (negative when the stream went
// backwards); LagSeconds is the age of the oldest event not yet applied.
type genStatus struct {
	Gen        string  `json:"gen"`
	Position   uint64  `json:"position"`
	Lag        int64   `json:"lag"`
	LagSeconds float64 `json:"lagSeconds"`
	Progress   float64 `json:"progress"` // position / last sequence, 0 to 1
}

// runStatus shows the stream head, the generations and their positions,
// lag, dead letters, the projector lease and configuration risks.
func runStatus(ctx context.Context, env *environment, args []string) error {
	var cfg Config
	fs, errs := newFlagSet("status", env, &cfg, "nats", "redis")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, errs, &cfg, args); err != nil {
		return err
	}
	c, err := connect(cfg, newLogger(cfg, env.stderr))
	if err != nil {
		return err
	}
	defer c.Close()
	js, store := c.js, c.store

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := collectStatus(ctx, js, store)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printStatus(env.stdout, rep)
}

func collectStatus(ctx context.Context, js jetstream.JetStream, store *readmodel.Store) (*statusReport, error) {
	rep := &statusReport{Warnings: []string{}}
	s, err := streamOrHint(ctx, js, events.Stream)
	if err != nil {
		return nil, err
	}
	info := s.CachedInfo()
	st := info.State
	rep.Stream = streamStatus{Name: events.Stream, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, Msgs: st.Msgs, Bytes: st.Bytes}
	rep.HistoryRisks, rep.ManualRisks = projector.HistoryRisks(info.Config)
	if rep.HistoryRisks == nil {
		rep.HistoryRisks = []string{}
	}
	if st.FirstSeq > 1 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the stream's first sequence is %d: events 1 to %d are gone, so a full rebuild would be partial and refuses to run", st.FirstSeq, st.FirstSeq-1))
	}

	switch dl, err := js.Stream(ctx, events.DeadLetterStream); {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		rep.Warnings = append(rep.Warnings, "dead-letter stream "+events.DeadLetterStream+" does not exist yet (the projector creates it)")
	case err != nil:
		return nil, fmt.Errorf("stream %s: %w", events.DeadLetterStream, err)
	default:
		n := dl.CachedInfo().State.Msgs
		rep.DeadLetters = &n
		if n > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d dead letters: see `sharesd deadletter list`", n))
		}
	}

	failed, err := projector.Failures(ctx, js)
	if err != nil {
		return nil, err
	}
	if rep.NotStored = len(failed); rep.NotStored > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d bad events the dead-letter stream refused: see NOT STORED in `sharesd deadletter list`", rep.NotStored))
	}

	ctl, err := store.ReadControl(ctx)
	if err != nil {
		return nil, fmt.Errorf("-redis-url / REDIS_URL: %w", err)
	}
	if err := partitionStatus(ctx, rep, store, ctl, st.LastSeq); err != nil {
		return nil, err
	}
	if rep.Generations, err = store.Generations(ctx); err != nil {
		return nil, fmt.Errorf("-redis-url / REDIS_URL: generations: %w", err)
	}
	rep.Active = genAt(ctx, s, ctl, ctl.Active, st.LastSeq)
	rep.Building = genAt(ctx, s, ctl, ctl.Building, st.LastSeq)
	rep.Handover = genAt(ctx, s, ctl, ctl.Handover, st.LastSeq)
	rep.Warnings = append(rep.Warnings, projectionWarnings(rep)...)

	rep.MaxmemoryPolicy, err = store.MaxmemoryPolicy(ctx)
	switch {
	case err != nil:
		rep.MaxmemoryPolicy = "unknown"
		rep.Warnings = append(rep.Warnings, "cannot read Redis's maxmemory-policy (CONFIG GET refused?): "+err.Error())
	case projector.SafeEvictionPolicy(rep.MaxmemoryPolicy):
		rep.EvictionSafe = true
	default:
		rep.Warnings = append(rep.Warnings, "Redis's maxmemory-policy "+rep.MaxmemoryPolicy+" can evict read-model keys: set noeviction")
	}
	return rep, nil
}

// partitionStatus fills in the partitions: each one's lease owner and its
// position in the active generation.
func partitionStatus(ctx context.Context, rep *statusReport, store *readmodel.Store, ctl readmodel.Control, last uint64) error {
	owners, err := store.LeaseOwners(ctx)
	if err != nil {
		return fmt.Errorf("-redis-url / REDIS_URL: %w", err)
	}
	if rep.PartitionCount, err = store.RecordedPartitions(ctx); err != nil {
		return fmt.Errorf("-redis-url / REDIS_URL: partitions: %w", err)
	}
	if rep.PartitionCount != 0 && rep.PartitionCount != len(owners) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the deployment uses %d partitions, this command was given %d (-partitions / PARTITIONS): the partitions below are counted with %d",
			rep.PartitionCount, len(owners), len(owners)))
	}
	rep.Partitions = make([]partStatus, len(owners))
	for q, owner := range owners {
		pos := ctl.PosOf(ctl.Active, q)
		rep.Partitions[q] = partStatus{Partition: q, Owner: owner, Position: pos, Lag: int64(last) - int64(pos)}
		rep.LeaseHeld = rep.LeaseHeld || owner != ""
	}
	return nil
}

// genAt places generation gen in the stream; nil when gen is "".
func genAt(ctx context.Context, s jetstream.Stream, ctl readmodel.Control, gen string, last uint64) *genStatus {
	if gen == "" {
		return nil
	}
	pos := ctl.Pos[gen]
	g := &genStatus{Gen: gen, Position: pos, Lag: int64(last) - int64(pos), Progress: 1}
	if last > 0 {
		g.Progress = min(float64(pos)/float64(last), 1)
	}
	if g.Lag > 0 {
		// The oldest event not yet applied: the next one at or after pos+1.
		if m, err := s.GetMsg(ctx, pos+1, jetstream.WithGetMsgSubject(events.Subjects)); err == nil {
			g.LagSeconds = time.Since(m.Time).Seconds()
		}
	}
	return g
}

func projectionWarnings(rep *statusReport) []string {
	var w []string
	switch {
	case rep.Active == nil && rep.Building != nil:
		w = append(w, "no active generation: a rebuild from zero is in progress and the API answers 503 until it is done")
	case rep.Active == nil:
		w = append(w, "no active generation: the API answers 503 until a projector has built one")
	case rep.Active.Lag < 0:
		w = append(w, fmt.Sprintf("the stream went backwards: its last sequence %d is below the active position %d; the projector rebuilds",
			rep.Stream.LastSeq, rep.Active.Position))
	}
	if !rep.LeaseHeld {
		w = append(w, "no projector holds a partition lease: nothing is being applied")
		return w
	}
	var free []string
	for _, p := range rep.Partitions {
		if p.Owner == "" {
			free = append(free, fmt.Sprint(p.Partition))
		}
	}
	if len(free) > 0 {
		w = append(w, "partitions without a projector (taken over within LEASE_TTL while one runs): "+strings.Join(free, ", "))
	}
	return w
}

func printStatus(out io.Writer, rep *statusReport) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	st := rep.Stream
	fmt.Fprintf(w, "stream %s\tseq %d..%d, %d events, %d bytes\n", st.Name, st.FirstSeq, st.LastSeq, st.Msgs, st.Bytes)
	fmt.Fprintf(w, "active generation\t%s\n", describeGen(rep.Active, false))
	fmt.Fprintf(w, "building generation\t%s\n", describeGen(rep.Building, true))
	fmt.Fprintf(w, "handover\t%s\n", describeGen(rep.Handover, true))
	lease := "no projector holds a partition lease"
	if rep.LeaseHeld {
		lease = "projecting"
	}
	fmt.Fprintf(w, "projector\t%s, %d partitions\n", lease, len(rep.Partitions))
	for _, p := range rep.Partitions {
		owner := p.Owner
		if owner == "" {
			owner = "(none)"
		}
		fmt.Fprintf(w, "  partition %d\towner %s, position %d, lag %d\n", p.Partition, owner, p.Position, p.Lag)
	}
	dl := "stream missing"
	if rep.DeadLetters != nil {
		dl = fmt.Sprintf("%d", *rep.DeadLetters)
	}
	if rep.NotStored > 0 {
		dl += fmt.Sprintf(" (and %d not stored)", rep.NotStored)
	}
	fmt.Fprintf(w, "dead letters\t%s\n", dl)
	fmt.Fprintf(w, "generations in redis\t%s\n", describeGens(rep.Generations))
	safe := "safe"
	if !rep.EvictionSafe {
		safe = "UNSAFE: can evict read-model keys"
	}
	fmt.Fprintf(w, "redis maxmemory-policy\t%s (%s)\n", rep.MaxmemoryPolicy, safe)
	risks := "none: limits retention, no age or size limit"
	if len(rep.HistoryRisks) > 0 {
		risks = "AT RISK: " + strings.Join(rep.HistoryRisks, "; ")
	}
	fmt.Fprintf(w, "stream history risks\t%s\n", risks)
	for _, m := range rep.ManualRisks {
		fmt.Fprintf(w, "\tby hand: %s\n", m)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(rep.Warnings) > 0 {
		fmt.Fprintln(out, "\nwarnings:")
		for _, s := range rep.Warnings {
			fmt.Fprintf(out, "  - %s\n", s)
		}
	}
	return nil
}

func describeGen(g *genStatus, progress bool) string {
	if g == nil {
		return "-"
	}
	s := fmt.Sprintf("%s at position %d, lag %d events", g.Gen, g.Position, g.Lag)
	if g.LagSeconds > 0 {
		s += fmt.Sprintf(" (oldest waiting %s)", time.Duration(g.LagSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	if progress {
		s += fmt.Sprintf(", %.1f%% of the stream", 100*g.Progress)
	}
	return s
}

func describeGens(gens map[string]int64) string {
	if len(gens) == 0 {
		return "none"
	}
	names := make([]string, 0, len(gens))
	for g := range gens {
		names = append(names, g)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, g := range names {
		parts[i] = fmt.Sprintf("%s (%d keys)", g, gens[g])
	}
	return strings.Join(parts, ", ")
}
