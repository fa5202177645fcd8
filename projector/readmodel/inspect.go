package readmodel

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// What an operator (or a test) needs to look at the read model from
// outside without spelling a key: which keys hold a render (who holds the
// partitions: see LeaseOwners).

// renderKeyNames names what each of a render's keys holds, in renderKeys
// order: the last part of its name (see doc.go).
var renderKeyNames = [len(renderKeys{})]string{
	kRender: "render", kShares: "shares", kRecs: "recs", kClicks: "clicks",
	kRevoked: "revoked", kSeen: "dedupe", kPending: "pending", kOldSeen: "seen",
}

// RenderKeys returns the Redis keys of render renderID in generation gen
// that exist, by what each holds: "render" (the render hash, the only one a
// deleted render keeps), "recs", "clicks" (shareId -> views counted apart
// from its record), "revoked", "dedupe" and "pending", and "shares" and "seen" of a
// render written in the earlier layout, as doc.go describes them. It is for
// looking at one render with redis-cli, and for tests that check what a
// render left behind.
func (s *Store) RenderKeys(ctx context.Context, gen, renderID string) (map[string]string, error) {
	if !validGen(gen) {
		return nil, fmt.Errorf("bad generation name %q", gen)
	}
	keys := renderKeysOf(gen, renderID)
	p := s.rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		exists[i] = p.Exists(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("render %s keys: %w", renderID, err)
	}
	out := map[string]string{}
	for i, c := range exists {
		if c.Val() == 1 {
			out[renderKeyNames[i]] = keys[i]
		}
	}
	return out, nil
}

// AddViews changes the view count of share shareID of render renderID in
// generation gen by n (which may be negative) behind the projector's back:
// the drift `sharesd verify` must report and a rebuild repair. It is for
// tests of those, and spells the change in the render's clicks hash, whose
// count the list adds to the share's own in either layout.
func (s *Store) AddViews(ctx context.Context, gen, renderID, shareID string, n int64) error {
	if !validGen(gen) {
		return fmt.Errorf("bad generation name %q", gen)
	}
	if err := s.rdb.HIncrBy(ctx, renderKeysOf(gen, renderID)[kClicks], shareID, n).Err(); err != nil {
		return fmt.Errorf("add views to %s/%s: %w", renderID, shareID, err)
	}
	return nil
}
