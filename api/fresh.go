package api

import (
	"sync/atomic"
	"time"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// freshness tells whether what was read from Redis at some moment is still
// current, from the projector's announcements alone (see Server.Follow), so
// a kept body can be sent without asking Redis.
//
// A read takes a stamp before it asks Redis: the state (an epoch, and
// whether the announcements are followed live) and the counters of the
// slots its render and its project hash to (by readmodel.ChangeID). An
// announced change bumps the counters of the ids it names; a switch, a
// (re)subscription or an announcement that names nothing moves the epoch;
// a lost subscription moves it and clears live. A stamp is current while
// none of this has happened since it was taken: whatever the read returned
// was read after every change that could make it old, or such a change has
// not been applied yet. So an answer read before an announcement and kept
// after it is never current, whichever finishes first.
//
// Slots are shared by ids whose ChangeIDs agree in their low bits: a change
// to one makes the others' stamps old too, which costs a Redis round trip,
// never a wrong answer. The counters are a fixed 128 KiB.
//
// A stamp also grows old after maxStampAge, whatever was announced: a
// change made without an announcement (a writer that does not announce, a
// switch announcement that failed to publish) is then seen within that
// time, at the cost of one Redis round trip per kept render and period.
type freshness struct {
	state atomic.Uint64 // epoch<<1 | 1 while live
	slots [freshSlots]atomic.Uint64
}

const freshSlots = 1 << 14

// maxStampAge is how long a read is trusted on the announcements alone.
const maxStampAge = 2 * time.Second

// stamp is the state of freshness a read began at (see freshness).
type stamp struct {
	at                   time.Time // when it was taken
	state                uint64
	render, project      uint32 // slots
	renderTick, projTick uint64
}

// take returns the stamp of a read of render in project starting now, and
// whether the announcements are followed live (a stamp taken otherwise is
// never current).
func (f *freshness) take(project, render string) (stamp, bool) {
	s := stamp{render: readmodel.ChangeID(render) % freshSlots, project: readmodel.ChangeID(project) % freshSlots}
	s.state = f.state.Load()
	s.at = time.Now()
	s.renderTick = f.slots[s.render].Load()
	s.projTick = f.slots[s.project].Load()
	return s, s.state&1 == 1
}

// current reports whether nothing that could change a read begun at s has
// been announced since, the announcements are still followed live, and s
// is younger than maxStampAge.
func (f *freshness) current(s stamp) bool {
	return s.state&1 == 1 && f.state.Load() == s.state &&
		f.slots[s.render].Load() == s.renderTick && f.slots[s.project].Load() == s.projTick &&
		time.Since(s.at) < maxStampAge
}

// follow takes in what FollowApplied reports.
func (f *freshness) follow(a readmodel.AppliedPos) {
	switch {
	case a.Lost:
		f.reset(false)
	case !a.Announced || a.Switched: // (re)subscribed, or switched: live from now on
		f.reset(true)
	case a.Changed == nil: // the announcement does not say what changed
		f.reset(true)
	default:
		for _, id := range a.Changed {
			f.slots[id%freshSlots].Add(1)
		}
	}
}

// reset moves the epoch, so that no stamp taken before is current, and
// records whether the announcements are followed live.
func (f *freshness) reset(live bool) {
	next := (f.state.Load()>>1 + 1) << 1
	if live {
		next |= 1
	}
	f.state.Store(next) // only FollowApplied's goroutine writes it
}
