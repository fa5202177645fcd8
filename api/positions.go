package api

import (
	"context"
	"sync"
	"time"
)

// Positions holds, per partition, the position the projector has applied,
// as readmodel.Store.FollowApplied reports it, so a ?minSeq request waits
// for a notification instead of polling Redis.
type Positions struct {
	mu     sync.Mutex
	all    uint64         // reached by every partition
	part   map[int]uint64 // further than all, by partition
	moved  chan struct{}  // closed and replaced whenever a position moves
	once   sync.Once
	closed chan struct{}
}

// NewPositions returns a Positions at position 0 in every partition.
func NewPositions() *Positions {
	return &Positions{part: map[int]uint64{}, moved: make(chan struct{}), closed: make(chan struct{})}
}

// Close ends every wait at once, and every later one: at shutdown, waiting
// requests answer with what they have instead of holding the process.
func (p *Positions) Close() { p.once.Do(func() { close(p.closed) }) }

// Set records that the projector has applied the stream up to pos in every
// partition.
func (p *Positions) Set(pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pos <= p.all {
		return
	}
	p.all = pos
	for k, v := range p.part {
		if v <= pos {
			delete(p.part, k)
		}
	}
	p.wake()
}

// SetPart records that the projector has applied partition part of the
// stream up to pos.
func (p *Positions) SetPart(part int, pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pos <= max(p.all, p.part[part]) {
		return
	}
	p.part[part] = pos
	p.wake()
}

func (p *Positions) wake() {
	close(p.moved)
	p.moved = make(chan struct{})
}

// Wait waits until partition part's position reaches n, at most d or until
// ctx ends, and reports whether it did.
func (p *Positions) Wait(ctx context.Context, part int, n uint64, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		p.mu.Lock()
		pos, moved := max(p.all, p.part[part]), p.moved
		p.mu.Unlock()
		if pos >= n {
			return true
		}
		select {
		case <-moved:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		case <-p.closed:
			return false
		}
	}
}
