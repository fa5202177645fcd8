package readmodel

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// AppliedPos is how far the projector has applied the stream.
type AppliedPos struct {
	Seq uint64
	// Announced is set for a position the projector announced after a
	// batch, and clear for the saved position read when the subscription
	// to the announcements (re)started.
	Announced bool
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
	return c.Pos[c.Active], nil
}

// announce queues the announcement of pos on p. On a cluster it is a
// sharded PUBLISH (SPUBLISH), which stays within the channel's shard where
// a PUBLISH would be broadcast to every node.
func (s *Store) announce(ctx context.Context, p redis.Pipeliner, pos uint64) {
	if s.cluster() != nil {
		p.SPublish(ctx, appliedChannel(), pos)
		return
	}
	p.Publish(ctx, appliedChannel(), pos)
}

// subscribe subscribes to the announcements (see announce).
func (s *Store) subscribe(ctx context.Context) *redis.PubSub {
	if c := s.cluster(); c != nil {
		return c.SSubscribe(ctx, appliedChannel())
	}
	return s.rdb.Subscribe(ctx, appliedChannel())
}

// How FollowApplied watches its subscription.
const (
	followPing       = 5 * time.Second        // ping a subscription this quiet
	followRetry      = 100 * time.Millisecond // first wait after an error
	followRetryLimit = 2 * time.Second
)

// FollowApplied calls f with the position the projector has applied until
// ctx ends: once subscribed to its announcements, the saved position (see
// Position), then each position it announces after a batch. When the
// connection is lost it subscribes again and reads the saved position
// again, so an announcement missed meanwhile is made up for. A position
// may come again or be lower than one before; f is called from one
// goroutine.
func (s *Store) FollowApplied(ctx context.Context, f func(AppliedPos)) {
	sub := s.subscribe(ctx)
	defer sub.Close()
	defer context.AfterFunc(ctx, func() { _ = sub.Close() })() // ends a blocked Receive
	wait := followRetry
	for {
		msg, err := sub.ReceiveTimeout(ctx, followPing)
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &ne) && ne.Timeout():
			_ = sub.Ping(ctx) // a dead connection fails it and is replaced
			continue
		case err != nil: // the next Receive connects and subscribes again
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, followRetryLimit)
			continue
		}
		wait = followRetry
		switch m := msg.(type) {
		case *redis.Subscription:
			if pos, err := s.Position(ctx); err == nil {
				f(AppliedPos{Seq: pos})
			}
		case *redis.Message:
			if n, err := strconv.ParseUint(m.Payload, 10, 64); err == nil {
				f(AppliedPos{Seq: n, Announced: true})
			}
		}
	}
}
