package readmodel

import (
	"context"
	"errors"
	"net"
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

// Announcement payloads (see doc.go): "<seq>", "<seq> keys", "switch".
const (
	announceKeys   = "keys"
	announceSwitch = "switch"
	announceParts  = "p=" // followed by the partitions, comma-separated
)

// announcement is the payload announcing a batch that ends at ops' last
// sequence. It never holds a key or a key hash.
func announcement(ops []Op, parts []int) string {
	msg := strconv.FormatUint(ops[len(ops)-1].Seq, 10)
	for i := range ops {
		if t := ops[i].Event.Type; t == events.TypeAPIKeyCreated || t == events.TypeAPIKeyRevoked {
			msg += " " + announceKeys
			break
		}
	}
	if parts != nil {
		msg += " " + announceParts
		for i, p := range parts {
			if i > 0 {
				msg += ","
			}
			msg += strconv.Itoa(p)
		}
	}
	return msg
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
		switch list, isParts := strings.CutPrefix(f, announceParts); {
		case f == announceKeys:
			a.Keys = true
		case isParts:
			a.Parts = []int{}
			for _, v := range strings.Split(list, ",") {
				if n, err := strconv.Atoi(v); err == nil && n >= 0 {
					a.Parts = append(a.Parts, n)
				}
			}
		}
	}
	return a, true
}

// announce queues msg on p. On a cluster it is a sharded PUBLISH
// (SPUBLISH), which stays within the channel's shard where a PUBLISH would
// be broadcast to every node.
func (s *Store) announce(ctx context.Context, p redis.Cmdable, msg string) *redis.IntCmd {
	if s.cluster() != nil {
		return p.SPublish(ctx, appliedChannel(), msg)
	}
	return p.Publish(ctx, appliedChannel(), msg)
}

// subscribe subscribes to the announcements (see announce).
func (s *Store) subscribe(ctx context.Context) *redis.PubSub {
	if c := s.cluster(); c != nil {
		return c.SSubscribe(ctx, appliedChannel())
	}
	return s.rdb.Subscribe(ctx, appliedChannel())
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
	sub := s.subscribe(ctx)
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
