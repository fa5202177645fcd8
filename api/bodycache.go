package api

import (
	"hash/maphash"
	"slices"
	"sync"
	"unsafe"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// bodyCache keeps the last body rendered for each render, with the versions
// it was rendered at. It never answers on its own: every request still asks
// Redis (in its one round trip) whether those versions are current, and only
// then is the kept body sent instead of reading and rendering the shares
// again. It is bounded by what its entries cost on the heap; when full it
// drops entries at random.
//
// An entry's cost is counted as the allocator sees it: one allocation that
// holds the key and the body (its capacity, which append rounds up to the
// allocator's size class), the entry struct (rounded the same way) and its
// share of the map, whose key is a 64-bit hash of the key so that a slot is
// small and costs about the same whatever the map's load.
type bodyCache struct {
	max       int // bytes; 0 disables the cache
	entryCost int // the struct and the map's share, for every entry
	seed      maphash.Seed

	mu      sync.RWMutex
	size    int
	entries map[uint64]*bodyEntry
}

type cachedBody struct {
	v    readmodel.Versions
	body []byte // immutable once stored
}

// bodyEntry is a kept body: data is the key followed by the body.
type bodyEntry struct {
	v    readmodel.Versions
	data []byte
	klen int
}

func (e *bodyEntry) cost(c *bodyCache) int { return cap(e.data) + c.entryCost }

// maxCachedBody is the largest body kept (a render of many thousand shares
// is read from Redis each time rather than crowding out the others).
const maxCachedBody = 1 << 20

// mapSlotCost is the map's share of an entry: a slot of a 64-bit key and a
// pointer plus its control byte (17 bytes) divided by the map's load, which
// lies between 7/16 and 7/8 of its slots and is lowered by the tombstones of
// evicted entries. Measured between 22 and 45 bytes as the map grows and
// churns (TestBodyCacheBoundCoversHeap); the middle is counted.
const mapSlotCost = 34

func newBodyCache(max int) *bodyCache {
	return &bodyCache{max: max, seed: maphash.MakeSeed(), entries: make(map[uint64]*bodyEntry),
		entryCost: allocSize(int(unsafe.Sizeof(bodyEntry{}))) + mapSlotCost}
}

// allocSize is the size of the allocation the runtime makes for n bytes:
// growing a slice rounds its capacity up to it.
func allocSize(n int) int { return cap(slices.Grow([]byte(nil), n)) }

func (c *bodyCache) get(key string) (cachedBody, bool) {
	h := maphash.String(c.seed, key)
	c.mu.RLock()
	e, ok := c.entries[h]
	c.mu.RUnlock()
	if !ok || string(e.data[:e.klen]) != key {
		return cachedBody{}, false
	}
	return cachedBody{v: e.v, body: e.data[e.klen:len(e.data):len(e.data)]}, true
}

// put keeps a copy of body as the rendering of key at v.
func (c *bodyCache) put(key string, v readmodel.Versions, body []byte) {
	if len(body) > maxCachedBody || len(key)+len(body)+c.entryCost > c.max {
		return
	}
	// Grow's capacity is the allocator's size class, not just the length.
	data := append(append(slices.Grow([]byte(nil), len(key)+len(body)), key...), body...)
	e := &bodyEntry{v: v, data: data, klen: len(key)}
	h := maphash.String(c.seed, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[h]; ok {
		c.size -= old.cost(c)
		delete(c.entries, h)
	}
	for k, old := range c.entries { // map order is random: random eviction
		if c.size+e.cost(c) <= c.max {
			break
		}
		delete(c.entries, k)
		c.size -= old.cost(c)
	}
	c.entries[h] = e
	c.size += e.cost(c)
}
