package readmodel

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events"
)

// AppliedPos is how far the projector has applied the stream, or news of
// the subscription that reports it (see FollowApplied).
type AppliedPos struct {
	Seq uint64
	// Announced is set for a position the projector announced after a
	// batch, and clear for the saved position read when the subscription
	// to the announcements (re)started, or after a generation switch.
	Announced bool
	// Keys is set for an announced batch that held an apikey.created or
	// apikey.revoked: API keys may have changed.
	Keys bool
	// Parts are the partitions an announced position is for; nil for
	// every partition (a batch of them all, or the saved position read at
	// a (re)subscription, which is the lowest of the partitions').
	Parts []int
	// Changed names, by ChangeID, the renders and projects whose reads an
	// announced batch may have changed: the render of each render and share
	// event in it, the project of each project.updated. It is nil when the
	// report does not say — not announced, an older projector's payload, a
	// batch naming more than maxChanged — and then anything may have
	// changed. Two ids may share a ChangeID: a change to one counts for both.
	Changed []uint32
	// Switched is set (with the saved position) when another generation
	// became active: anything read before may have changed.
	Switched bool
	// Lost is set (with Seq 0) when a live subscription failed or fell
	// silent: announcements may be missed until the next report without
	// Announced, which follows a new subscription.
	Lost bool
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Position is the saved resume position of the active generation: how far
// the stream is applied, at least. It is 0 while no generation is active.
func (s *Store) Position(ctx context.Context) (uint64, error) {
	c, err := s.ReadControl(ctx)
	if err != nil {
		return 0, err
	}
	return c.MinPos(c.Active, s.Partitions()), nil
}

// Announcement payloads (see doc.go): "<seq>[ keys][ p=<parts>][ c=<ids>]",
// "switch".
const (
	announceKeys    = "keys"
	announceSwitch  = "switch"
	announceParts   = "p=" // followed by the partitions, comma-separated
	announceChanged = "c=" // followed by ChangeIDs in base 36, comma-separated
)

// maxChanged is the most ChangeIDs an announcement names (a batch of the
// default 512 events names them all, in at most 4 KiB); a batch that
// changed more is announced without them: anything may have changed.
const maxChanged = 512

// ChangeID is how an announcement names a render or a project (see
// AppliedPos.Changed): a 32-bit FNV-1a hash of the id, lowercase, folded
// from 64 bits. It is short rather than unique: a reader that keeps
// something per id drops it when its ChangeID is announced.
func ChangeID(id string) uint32 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint64(c)) * 1099511628211
	}
	return uint32(h ^ h>>32)
}

// announcement is the payload announcing a batch that ends at ops' last
// sequence. It never holds a key or a key hash.
func announcement(ops []Op, parts []int) string {
	b := strconv.AppendUint(make([]byte, 0, 64), ops[len(ops)-1].Seq, 10)
	for i := range ops {
		if t := ops[i].Event.Type; t == events.TypeAPIKeyCreated || t == events.TypeAPIKeyRevoked {
			b = append(append(b, ' '), announceKeys...)
			break
		}
	}
	if parts != nil {
		b = append(append(b, ' '), announceParts...)
		for i, p := range parts {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(p), 10)
		}
	}
	return string(appendChanged(b, changed(ops)))
}

// changed lists, once each and sorted, the ChangeIDs of what ops may
// change (see AppliedPos.Changed), or returns nil when there are more than
// maxChanged.
func changed(ops []Op) []uint32 {
	ids := make([]uint32, 0, len(ops))
	for i := range ops {
		switch e := &ops[i].Event; {
		case e.Type == events.TypeProjectUpdated:
			ids = append(ids, ChangeID(e.ProjectID))
		case e.RenderID != "":
			ids = append(ids, ChangeID(e.RenderID))
		}
	}
	slices.Sort(ids)
	if ids = slices.Compact(ids); len(ids) > maxChanged {
		return nil
	}
	return ids
}

// appendChanged appends the word naming ids: " c=" and the list, empty
// when the batch changed no render or project; nothing when ids is nil.
func appendChanged(b []byte, ids []uint32) []byte {
	if ids == nil {
		return b
	}
	b = append(append(b, ' '), announceChanged...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(id), 36)
	}
	return b
}

// AnnounceChanged tells readers that the renders or projects ids may have
// changed outside a batch (a render rebuilt and swapped in): an
// announcement at sequence 0, which moves no position.
func (s *Store) AnnounceChanged(ctx context.Context, ids ...string) error {
	cids := make([]uint32, len(ids))
	for i, id := range ids {
		cids[i] = ChangeID(id)
	}
	return s.announce(ctx, s.rdb, string(appendChanged([]byte("0"), cids))).Err()
}

// parseAnnouncement reads a payload of announcement: a bare sequence (the
// payload of older projectors) or a sequence and flags.
func parseAnnouncement(payload string) (AppliedPos, bool) {
	seq, flags, _ := strings.Cut(payload, " ")
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return AppliedPos{}, false
	}
	a := AppliedPos{Seq: n, Announced: true}
	for _, f := range strings.Fields(flags) {
		if f == announceKeys {
			a.Keys = true
		} else if list, ok := strings.CutPrefix(f, announceParts); ok {
			a.Parts = []int{}
			for _, v := range strings.Split(list, ",") {
				if n, err := strconv.Atoi(v); err == nil && n >= 0 {
					a.Parts = append(a.Parts, n)
				}
			}
		} else if list, ok := strings.CutPrefix(f, announceChanged); ok {
			a.Changed = parseChanged(list)
		}
	}
	return a, true
}

// parseChanged reads the list of a "c=" word; nil (anything may have
// changed) when an entry is not a ChangeID.
func parseChanged(list string) []uint32 {
	ids := []uint32{}
	for rest := list; rest != ""; {
		var v string
		v, rest, _ = strings.Cut(rest, ",")
		n, err := strconv.ParseUint(v, 36, 32)
		if err != nil {
			return nil
		}
		ids = append(ids, uint32(n))
	}
	return ids
}

// announce queues msg on the announcements' channel on p (see publish).
func (s *Store) announce(ctx context.Context, p redis.Cmdable, msg string) *redis.IntCmd {
	return s.publish(ctx, p, appliedChannel(), msg)
}

// publish queues msg on channel on p. On a cluster it is a sharded PUBLISH
// (SPUBLISH), which stays within the channel's shard where a PUBLISH would
// be broadcast to every node.
func (s *Store) publish(ctx context.Context, p redis.Cmdable, channel, msg string) *redis.IntCmd {
	if s.cluster() != nil {
		return p.SPublish(ctx, channel, msg)
	}
	return p.Publish(ctx, channel, msg)
}

// subscribe subscribes to channel (see publish).
func (s *Store) subscribe(ctx context.Context, channel string) *redis.PubSub {
	if c := s.cluster(); c != nil {
		return c.SSubscribe(ctx, channel)
	}
	return s.rdb.Subscribe(ctx, channel)
}

// How FollowApplied watches its subscription. A subscription that has
// answered nothing (no announcement, no pong) for followSilence is given
// up as lost: with a ping every followPing, that takes a silent Redis, a
// paused one or a dead link.
const (
	followPing       = 200 * time.Millisecond // ping a subscription this quiet
	followSilence    = 800 * time.Millisecond // give up a subscription this quiet
	followRetry      = 100 * time.Millisecond // first wait after an error
	followRetryLimit = 2 * time.Second
)

// FollowApplied calls f with the position the projector has applied until
// ctx ends: once subscribed to its announcements, the saved position (see
// Position), then each position it announces after a batch. When the
// subscription fails or answers nothing for about a second, it reports it
// Lost, subscribes again and reads the saved position again, so an
// announcement missed meanwhile is made up for. A generation switch is
// reported with the saved position read then. A position may come again
// or be lower than one before; f is called from one goroutine.
//
// Between a report without Announced and the next Lost, every announcement
// published is reported, in order: a cache emptied at the first and at
// each change announced since stays exact.
func (s *Store) FollowApplied(ctx context.Context, f func(AppliedPos)) {
	wait := followRetry
	for ctx.Err() == nil {
		if s.follow(ctx, f) {
			f(AppliedPos{Lost: true})
			wait = followRetry
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, followRetryLimit)
	}
}

// follow runs one subscription of FollowApplied until it fails, falls
// silent or ctx ends, and reports whether it got live (reported a position).
func (s *Store) follow(ctx context.Context, f func(AppliedPos)) (live bool) {
	sub := s.subscribe(ctx, appliedChannel())
	defer sub.Close()
	defer context.AfterFunc(ctx, func() { _ = sub.Close() })() // ends a blocked Receive
	heard := time.Now()
	for {
		msg, err := sub.ReceiveTimeout(ctx, followPing)
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			return live
		case errors.As(err, &ne) && ne.Timeout():
			if time.Since(heard) > followSilence {
				return live
			}
			if live {
				_ = sub.Ping(ctx) // answered by a pong unless the connection is dead
			}
			continue
		case err != nil:
			return live
		}
		heard = time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			pos, err := s.Position(ctx)
			if err != nil {
				return live
			}
			live = true
			f(AppliedPos{Seq: pos})
		case *redis.Message:
			if m.Payload == announceSwitch {
				pos, err := s.Position(ctx)
				if err != nil {
					return live
				}
				f(AppliedPos{Seq: pos, Switched: true})
			} else if a, ok := parseAnnouncement(m.Payload); ok {
				f(a)
			}
		}
	}
}
