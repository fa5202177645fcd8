package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

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

// keyCache keeps key lookups (found or not) for a short TTL, bounded in
// size. The TTL bounds how long a revoked key is still accepted.
type keyCache struct {
	store Store
	ttl   time.Duration
	size  int

	mu      sync.Mutex
	entries map[string]keyEntry
}

type keyEntry struct {
	key     readmodel.Key
	err     error // nil or readmodel.ErrNotFound
	expires time.Time
}

func newKeyCache(store Store, ttl time.Duration, size int) *keyCache {
	return &keyCache{store: store, ttl: ttl, size: size, entries: make(map[string]keyEntry)}
}

func (c *keyCache) get(ctx context.Context, hash string) (readmodel.Key, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[hash]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.key, e.err
	}
	key, err := c.store.Key(ctx, hash)
	if err != nil && !errors.Is(err, readmodel.ErrNotFound) {
		return key, err // not cached: unavailability is not an answer
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.size {
		for k, old := range c.entries { // evict the expired, else any one
			if now.After(old.expires) || len(c.entries) >= c.size {
				delete(c.entries, k)
			}
			if len(c.entries) < c.size/2 {
				break
			}
		}
	}
	c.entries[hash] = keyEntry{key: key, err: err, expires: now.Add(c.ttl)}
	return key, err
}
