package events

import "strings"

// DefaultPartitions is how many partitions the event flow is split into
// unless a deployment says otherwise (PARTITIONS).
const DefaultPartitions = 8

// MaxPartitions bounds PARTITIONS: each partition costs a lease and a
// position per generation, renewed and saved every batch.
const MaxPartitions = 1024

// Partition is the partition, of n, that an event on subject belongs to. It
// is decided by the subject's entity token alone — the render id of render
// and share events, the key id of apikey events, the project id of project
// events — in lowercase, as Decode accepts either case. So each render's
// events, in stream order, fall in one partition, whether or not they
// decode: a malformed event is dead-lettered by its partition's owner. A
// subject without an entity token falls in partition 0.
func Partition(subject string, n int) int {
	if n <= 1 {
		return 0
	}
	rest, ok := strings.CutPrefix(subject, SubjectPre)
	if !ok {
		return 0
	}
	// craftkit.<noun>.<verb>.<entity>: the entity is everything after the
	// third dot, so an entity with dots in it is still one token.
	i := strings.IndexByte(rest, '.')
	if i < 0 {
		return 0
	}
	j := strings.IndexByte(rest[i+1:], '.')
	if j < 0 {
		return 0
	}
	return PartitionOf(rest[i+1+j+1:], n)
}

// PartitionOf is the partition, of n, of the entity id: FNV-1a of its
// lowercase form, modulo n. The API uses it for a render id.
func PartitionOf(entity string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261) // FNV-1a, 32 bits
	for i := 0; i < len(entity); i++ {
		c := entity[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint32(c)) * 16777619
	}
	return int(h % uint32(n))
}
