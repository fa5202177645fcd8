package api

import (
	"hash/maphash"
	"slices"
	"sync"
	"unsafe"

	"github.com/craftkit/sharesd/projector/readmodel"
)

// bodyCache keeps the last body rendered for each render, with the versions
// and the render's sequence it was rendered at and the stamp (see
// freshness) of the read it came from. While that stamp is current the body
// is sent from memory; otherwise the request asks Redis (in its one round
// trip) whether those versions are still current, and only then is the kept
// body sent instead of reading and rendering the shares again. It is
// bounded by what its entries cost on the heap; when full it drops entries
// at random.
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
	v     readmodel.Versions
	seq   uint64 // the render's applied sequence (readmodel.List.Seq)
	stamp stamp
	body  []byte   // immutable once stored
	hdr   *headers // its header values, immutable
}

// bodyEntry is a kept body: data is the key followed by the body.
type bodyEntry struct {
	v     readmodel.Versions
	seq   uint64
	stamp stamp
	hdr   *headers
	data  []byte
	klen  int
	hcost int // what hdr costs on the heap
}

func (e *bodyEntry) cost(c *bodyCache) int { return cap(e.data) + c.entryCost + e.hcost }

// cost is what h costs on the heap: the struct, three one-element slices
// and the strings.
func (h *headers) cost() int {
	if h == nil {
		return 0
	}
	n := allocSize(int(unsafe.Sizeof(headers{}))) + 3*allocSize(int(unsafe.Sizeof("")))
	for _, v := range [...]string{h.etag[0], h.seq[0], h.length[0]} {
		n += allocSize(len(v))
	}
	return n
}

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
	return cachedBody{v: e.v, seq: e.seq, stamp: e.stamp, hdr: e.hdr, body: e.data[e.klen:len(e.data):len(e.data)]}, true
}

// put keeps a copy of b.body as the rendering of key, unless the entry
// kept for key is newer: read in the same epoch at a later sequence or
// project version (a slower read finishing last never replaces a faster,
// newer one, so what memory serves never goes back).
func (c *bodyCache) put(key string, b cachedBody) {
	if len(b.body) > maxCachedBody || len(key)+len(b.body)+c.entryCost+b.hdr.cost() > c.max {
		return
	}
	// Grow's capacity is the allocator's size class, not just the length.
	data := append(append(slices.Grow([]byte(nil), len(key)+len(b.body)), key...), b.body...)
	c.store(key, &bodyEntry{v: b.v, seq: b.seq, stamp: b.stamp, hdr: b.hdr, data: data, klen: len(key)})
}

// restamp records that the body kept for key at b.v was confirmed current
// by a read begun at b.stamp, at sequence b.seq.
func (c *bodyCache) restamp(key string, b cachedBody) {
	h := maphash.String(c.seed, key)
	c.mu.RLock()
	e, ok := c.entries[h]
	c.mu.RUnlock()
	if !ok || e.v != b.v || string(e.data[:e.klen]) != key {
		return
	}
	c.store(key, &bodyEntry{v: b.v, seq: b.seq, stamp: b.stamp, hdr: b.hdr, data: e.data, klen: e.klen})
}

// newer reports whether e was read in the same epoch as n and is newer.
func (e *bodyEntry) newer(n *bodyEntry) bool {
	return e.stamp.state == n.stamp.state &&
		(e.seq > n.seq || e.seq == n.seq && e.v.ProjectVer > n.v.ProjectVer)
}

// store puts e in the map unless the entry there is newer, evicting at
// random to stay within the bound.
func (c *bodyCache) store(key string, e *bodyEntry) {
	e.hcost = e.hdr.cost()
	h := maphash.String(c.seed, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[h]; ok {
		if old.newer(e) && string(old.data[:old.klen]) == key {
			return
		}
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
