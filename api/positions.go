package api

import (
	"context"
	"sync"
	"time"
)

// Positions holds the position the projector has applied, as
// readmodel.Store.FollowApplied reports it, so a ?minSeq request waits for
// a notification instead of polling Redis.
type Positions struct {
	mu     sync.Mutex
	pos    uint64
	moved  chan struct{} // closed and replaced whenever pos moves
	closed chan struct{}
	once   sync.Once
}

// NewPositions returns a Positions at position 0.
func NewPositions() *Positions {
	return &Positions{moved: make(chan struct{}), closed: make(chan struct{})}
}

// Close ends every wait at once, and every later one: at shutdown, waiting
// requests answer with what they have instead of holding the process.
func (p *Positions) Close() { p.once.Do(func() { close(p.closed) }) }

// Set records that the projector has applied the stream up to pos.
func (p *Positions) Set(pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pos <= p.pos {
		return
	}
	p.pos = pos
	close(p.moved)
	p.moved = make(chan struct{})
}

// Wait waits until the position reaches n, at most d or until ctx ends, and
// reports whether it did.
func (p *Positions) Wait(ctx context.Context, n uint64, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		p.mu.Lock()
		pos, moved := p.pos, p.moved
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
