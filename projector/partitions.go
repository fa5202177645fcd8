package projector

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// This file shares the partitions among the running projectors. Each
// projector renews a membership and the partition leases it holds every
// LeaseTTL/3, and at once when another one announces that it gave up
// leases or joined; from the members it works out its fair share (the
// partitions divided by the members, the remainder going to the first in
// rank: see share) and gives up or takes leases to reach it. Generation work — a
// build from nothing, a takeover from a rebuild, a rebuild after the stream
// went backwards — needs every partition: the first member in rank
// then takes them all and the others give theirs up until it is done.
//
// A run applies the partitions its projector holds, from the lowest of
// their positions, skipping the events of other partitions and those at or
// below their own partition's position. Its checkpoint is fenced: it saves
// a position only for partitions whose leases it still holds (see
// readmodel.Checkpoint). Its writes to the read model need no fence: every
// script is guarded by its render's, project's or key's last applied
// sequence, so a projector that lost a lease while paused and writes late
// finds its events applied already (Stale) and changes nothing.

// errRebalance ends a lead when the partitions a projector should hold
// changed: it gives some up or takes more, and starts a new run.
var errRebalance = errors.New("projector: partitions rebalanced")

// errNeedAll ends a lead that meets generation work without holding every
// partition.
var errNeedAll = errors.New("projector: generation work needs every partition")

// genWork reports whether the control state calls for work on a whole
// generation: there is none active, a rebuilt one waits to be taken over,
// or the stream went backwards under the active one.
func genWork(c readmodel.Control) bool {
	return c.Active == "" || c.Handover != "" && c.Handover != c.Active || c.Heal
}

// share is how many partitions token should hold, of n, among members,
// given how many each holds now (held, by token). The members are ranked
// by what they hold, most first, then by token: the first n % members get
// one more than the rest, so a holder keeps what it has when the counts
// already fit and a projector that joins does not take a partition from
// one that keeps its share. Generation work goes to the first in rank.
func share(token string, members []string, held map[string]int, n int, ctl readmodel.Control) int {
	ranked := slices.Clone(members)
	slices.SortStableFunc(ranked, func(a, b string) int {
		if d := held[b] - held[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	rank := slices.Index(ranked, token)
	switch {
	case rank < 0:
		return 0
	case genWork(ctl):
		if rank == 0 {
			return n
		}
		return 0
	}
	m := len(ranked)
	fair := n / m
	if rank < n%m {
		fair++
	}
	return fair
}

// holdings counts the partitions each projector holds.
func holdings(owners []string) map[string]int {
	held := map[string]int{}
	for _, o := range owners {
		if o != "" {
			held[o]++
		}
	}
	return held
}

// standing renews this projector's membership and leases and works out
// its share: the leases it holds, how many it should hold and every
// partition's owner ("" for none).
func (p *Projector) standing(ctx context.Context) (l readmodel.Leases, want int, owners []string, err error) {
	if l, err = p.store.RenewLeases(ctx, p.token, p.cfg.LeaseTTL); err != nil {
		return l, 0, nil, err
	}
	ctl, err := p.store.ReadControl(ctx)
	if err != nil {
		return l, 0, nil, err
	}
	if owners, err = p.store.LeaseOwners(ctx); err != nil {
		return l, 0, nil, err
	}
	return l, share(p.token, l.Members, holdings(owners), p.store.Partitions(), ctl), owners, nil
}

// balance renews this projector's membership and leases and gives up or
// takes leases to reach its share. It returns the partitions it holds.
func (p *Projector) balance(ctx context.Context) ([]int, error) {
	l, want, _, err := p.standing(ctx)
	if err != nil {
		return nil, err
	}
	owned := l.Owned
	switch {
	case len(owned) > want:
		if err := p.store.ReleaseLeases(ctx, p.token, owned[want:], false); err != nil {
			return nil, err
		}
		owned = owned[:want]
	case len(owned) < want:
		got, err := p.store.ClaimLeases(ctx, p.token, p.cfg.LeaseTTL, want-len(owned))
		if err != nil {
			return nil, err
		}
		owned = append(owned, got...)
		slices.Sort(owned)
	}
	p.setOwned(owned)
	return owned, nil
}

// watch renews the leases of owned every LeaseTTL/3, and at once when
// another projector gave up leases or joined, while ctx lives. It cancels
// ctx with errLeaseLost when one of them was lost or could not be renewed
// before it expired, and with errRebalance when this projector should hold
// fewer, or more while some are free.
func (p *Projector) watch(ctx context.Context, cancel context.CancelCauseFunc, owned []int) {
	last := time.Now()
	for {
		p.pause(ctx, p.cfg.LeaseTTL/3)
		if ctx.Err() != nil {
			return
		}
		cause := p.check(ctx, owned)
		switch {
		case cause == nil:
			last = time.Now()
		case errors.Is(cause, errLeaseLost), errors.Is(cause, errRebalance):
			cancel(cause)
			return
		case time.Now().Sub(last) > p.cfg.LeaseTTL:
			cancel(errLeaseLost)
			return
		}
	}
}

// check renews owned and says whether the run on them should end.
func (p *Projector) check(ctx context.Context, owned []int) error {
	l, want, owners, err := p.standing(ctx)
	if err != nil {
		return err
	}
	for _, o := range owned {
		if !slices.Contains(l.Owned, o) {
			return errLeaseLost
		}
	}
	if want < len(owned) || want > len(owned) && slices.Contains(owners, "") {
		return errRebalance
	}
	return nil
}

// partSet is the partitions a run applies, with each one's position.
type partSet struct {
	n     int
	owned []int    // nil: every partition
	has   []bool   // indexed by partition
	from  []uint64 // indexed by partition: applied up to here already
}

// newPartSet is owned's part of gen as ctl records it (owned nil: all).
func newPartSet(n int, owned []int, ctl readmodel.Control, gen string) *partSet {
	s := &partSet{n: n, owned: owned, has: make([]bool, n), from: make([]uint64, n)}
	for q := range n {
		s.has[q] = owned == nil || slices.Contains(owned, q)
		s.from[q] = ctl.PosOf(gen, q)
	}
	return s
}

// all reports whether the set holds every partition.
func (s *partSet) all() bool { return s == nil || len(s.owned) == s.n || s.owned == nil }

// start is where a run on the set starts: the lowest position of its
// partitions.
func (s *partSet) start() uint64 {
	var m uint64
	first := true
	for q := range s.n {
		if s.has[q] && (first || s.from[q] < m) {
			m, first = s.from[q], false
		}
	}
	return m
}

// keeps reports whether the event at seq on subject is for this set and
// not yet applied by its partition.
func (s *partSet) keeps(subject string, seq uint64) bool {
	if s == nil {
		return true
	}
	q := events.Partition(subject, s.n)
	return s.has[q] && seq > s.from[q]
}

// markCap is how far the dead-letter mark may rise after a batch ending at
// end: no further than the partitions outside the set have been applied,
// as ctl (read in the batch's round trip) records them.
func (s *partSet) markCap(end uint64, ctl readmodel.Control, gen string) uint64 {
	if s.all() {
		return end
	}
	for q := range s.n {
		if !s.has[q] {
			end = min(end, ctl.PosOf(gen, q))
		}
	}
	return end
}
