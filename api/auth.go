package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector/readmodel"
)

// unauthorizedMessage is the one answer to every authentication failure:
// the same body whatever the cause, so a caller learns nothing about keys.
const unauthorizedMessage = "a valid API key is required"

// authenticate admits requests with a live key of this server's
// environment and puts the key's project in the context. Keys are looked up
// by events.KeyHash; the plaintext and its hash are never logged.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		token, ok := bearer(r.Header.Get("Authorization"))
		if env, named := events.KeyEnv(token); !ok || !named || env != s.cfg.Env {
			writeError(w, codeUnauthorized, unauthorizedMessage)
			return
		}
		key, err := s.keys.get(ctx, events.KeyHash(token))
		switch {
		case errors.Is(err, readmodel.ErrNotFound):
			writeError(w, codeUnauthorized, unauthorizedMessage)
			return
		case err != nil:
			s.logger.ErrorContext(ctx, "key lookup", "request_id", requestID(ctx), "err", err)
			unavailable(w)
			return
		case key.Revoked || key.Environment != s.cfg.Env:
			writeError(w, codeUnauthorized, unauthorizedMessage)
			return
		}
		infoFrom(ctx).project = key.ProjectID
		next.ServeHTTP(w, r)
	})
}

func projectFrom(ctx context.Context) string { return infoFrom(ctx).project }

// bearer extracts the credentials of a Bearer authorization header; the
// scheme is case-insensitive (RFC 9110).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != "" && !strings.ContainsAny(token, " \t")
}

// keyCache keeps key lookups (found or not), bounded in size, with no
// time-to-live: an entry is served only while the announcements of the
// projector (see readmodel.Store.FollowApplied) are followed live and no
// key change has been announced since it was read. Every announced key
// change, generation switch, (re)subscription and lost subscription empties
// it; until a subscription is live again every lookup asks Redis.
//
// epoch counts the emptyings: a lookup stores its answer only if the epoch
// has not moved since it started, so an answer read before a change and
// returned after its announcement is never kept.
type keyCache struct {
	store Store
	size  int

	mu      sync.Mutex
	live    bool
	epoch   uint64
	entries map[string]keyEntry
}

type keyEntry struct {
	key readmodel.Key
	err error // nil or readmodel.ErrNotFound
}

func newKeyCache(store Store, size int) *keyCache {
	return &keyCache{store: store, size: size, entries: make(map[string]keyEntry)}
}

func (c *keyCache) get(ctx context.Context, hash string) (readmodel.Key, error) {
	c.mu.Lock()
	e, ok := c.entries[hash]
	epoch := c.epoch
	c.mu.Unlock()
	if ok {
		return e.key, e.err
	}
	key, err := c.store.Key(ctx, hash)
	if err != nil && !errors.Is(err, readmodel.ErrNotFound) {
		return key, err // not cached: unavailability is not an answer
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.epoch != epoch {
		return key, err
	}
	if len(c.entries) >= c.size {
		for k := range c.entries { // evict about half, at random
			delete(c.entries, k)
			if len(c.entries) < c.size/2 {
				break
			}
		}
	}
	c.entries[hash] = keyEntry{key: key, err: err}
	return key, err
}

// follow takes in what FollowApplied reports.
func (c *keyCache) follow(a readmodel.AppliedPos) {
	switch {
	case a.Lost:
		c.reset(false)
	case !a.Announced: // (re)subscribed, or switched: live from now on
		c.reset(true)
	case a.Keys:
		c.reset(true)
	}
}

// reset empties the cache and records whether it may fill again.
func (c *keyCache) reset(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.live = live
	clear(c.entries)
}
