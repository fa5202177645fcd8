package api

import (
	"sync"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// bodyCache keeps the last body rendered for each render, with the versions
// it was rendered at. It never answers on its own: every request still asks
// Redis (in its one round trip) whether those versions are current, and only
// then is the kept body sent instead of reading and rendering the shares
// again. It is bounded in bytes; when full it drops entries at random.
type bodyCache struct {
	max int // bytes; 0 disables the cache

	mu      sync.RWMutex
	size    int
	entries map[string]cachedBody
}

type cachedBody struct {
	v    readmodel.Versions
	body []byte // immutable once stored
}

// maxCachedBody is the largest body kept (a render of many thousand shares
// is read from Redis each time rather than crowding out the others).
const maxCachedBody = 1 << 20

func newBodyCache(max int) *bodyCache {
	return &bodyCache{max: max, entries: make(map[string]cachedBody)}
}

func (c *bodyCache) get(key string) (cachedBody, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[key]
	return e, ok
}

// put keeps a copy of body as the rendering of key at v.
func (c *bodyCache) put(key string, v readmodel.Versions, body []byte) {
	if len(body) > maxCachedBody || len(body) > c.max {
		return
	}
	e := cachedBody{v: v, body: append([]byte(nil), body...)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok {
		c.size -= len(old.body)
	}
	for k, old := range c.entries { // map order is random: random eviction
		if c.size+len(e.body) <= c.max {
			break
		}
		delete(c.entries, k)
		c.size -= len(old.body)
	}
	c.entries[key] = e
	c.size += len(e.body)
}
