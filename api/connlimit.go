package api

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ConnLimiter keeps an HTTP server's open connections at or below a limit,
// so that idle or silent clients cannot use up the process's file
// descriptors, while real requests are still answered:
//
//   - The listener accepts only while fewer than max connections are open,
//     so the count of open connections never exceeds max.
//   - When a connection takes the last free slot, the connection quiet the
//     longest is closed to keep a slot free for the next. Quiet means idle
//     between requests (http.StateIdle), or new (http.StateNew) for longer
//     than NewConnGrace with nothing read from it. A connection with a
//     request under way is never closed, nor a new one within its grace,
//     whose client has had no time to send.
//   - When none is quiet, the listener waits until a connection closes or
//     turns quiet; new connections wait meanwhile in the kernel's accept
//     queue, which holds no descriptor. Every busy connection ends within
//     the server's read and write timeouts, so the wait is bounded by them.
//
// A client that pipelines requests may have its next request taken for
// quiet while it is buffered; clients retry such a GET on a new connection.
type ConnLimiter struct {
	net.Listener
	max int

	mu      sync.Mutex
	open    int           // connections open, and slots reserved for the next
	pending int           // slots reserved by Accept, not connections yet
	fresh   list.List     // new connections with nothing read, oldest first
	idle    list.List     // connections idle between requests, longest first
	changed chan struct{} // a connection closed or turned quiet (capacity 1)
	done    chan struct{} // closed by Close
	once    sync.Once

	evicted atomic.Int64
	metrics *Metrics
}

// NewConnGrace is how long a new connection may stay silent before it
// counts as quiet.
const NewConnGrace = 500 * time.Millisecond

// LimitConns returns ln limited to max open connections for srv, whose
// ConnState hook it sets (calling the one already set, if any), counting
// them in metrics (which may be nil). Serve srv on the returned listener.
func LimitConns(srv *http.Server, ln net.Listener, max int, metrics *Metrics) *ConnLimiter {
	l := &ConnLimiter{Listener: ln, max: max, changed: make(chan struct{}, 1), done: make(chan struct{}), metrics: metrics}
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if lc, ok := c.(*limitedConn); ok {
			lc.l.setState(lc, s)
		}
		if next != nil {
			next(c, s)
		}
	}
	return l
}

// Open is the number of connections open now.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open - l.pending
}

// Evicted is the number of quiet connections closed to make room.
func (l *ConnLimiter) Evicted() int64 { return l.evicted.Load() }

// Accept waits for a free slot, then for a connection.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	if err := l.reserve(); err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	l.mu.Lock()
	l.pending--
	if err != nil {
		l.open--
		l.mu.Unlock()
		l.signal()
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	lc.quiet(&l.fresh)
	l.mu.Unlock()
	l.metrics.connOpened()
	return lc, nil
}

// Close closes the listener and ends a wait in Accept.
func (l *ConnLimiter) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// reserve takes a slot for the next connection, closing the connection
// quiet the longest when none is free, or waiting for one.
func (l *ConnLimiter) reserve() error {
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.pending++
			l.mu.Unlock()
			return nil
		}
		victim, wait := l.victim(time.Now())
		if victim != nil {
			victim.unquiet()
		}
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Add(1)
			l.metrics.connEvicted()
			_ = victim.Close() // the server's read fails and it forgets the connection
			continue
		}
		if err := l.waitChange(wait); err != nil {
			return err
		}
	}
}

// waitChange waits until a connection closes or turns quiet, or for wait
// when it is positive.
func (l *ConnLimiter) waitChange(wait time.Duration) error {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-l.changed:
	case <-timeout:
	case <-l.done:
		return net.ErrClosed
	}
	return nil
}

// victim is the connection quiet the longest, or nil and how long until a
// new connection's grace ends (0 if none is waiting for it); l.mu is held.
func (l *ConnLimiter) victim(now time.Time) (*limitedConn, time.Duration) {
	var idle, fresh *limitedConn
	if e := l.idle.Front(); e != nil {
		idle = e.Value.(*limitedConn)
	}
	if e := l.fresh.Front(); e != nil {
		fresh = e.Value.(*limitedConn)
	}
	var wait time.Duration
	if fresh != nil {
		if wait = NewConnGrace - now.Sub(fresh.since); wait > 0 {
			fresh = nil
		}
	}
	switch {
	case fresh != nil && (idle == nil || fresh.since.Before(idle.since)):
		return fresh, 0
	case idle != nil:
		return idle, 0
	}
	return nil, max(wait, 0)
}

func (l *ConnLimiter) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *ConnLimiter) setState(lc *limitedConn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateIdle:
		if !lc.closed {
			lc.unquiet()
			lc.quiet(&l.idle)
			l.signal()
		}
	case http.StateActive, http.StateHijacked, http.StateClosed:
		lc.unquiet()
	}
}

// limitedConn is a connection counted by its ConnLimiter.
type limitedConn struct {
	net.Conn
	l *ConnLimiter

	isQuiet atomic.Bool // on a quiet list: Read checks it without the lock
	// Guarded by l.mu:
	elem   *list.Element
	on     *list.List
	since  time.Time // when it turned quiet
	closed bool
}

// quiet puts c on the quiet list q; l.mu is held.
func (c *limitedConn) quiet(q *list.List) {
	c.elem, c.on, c.since = q.PushBack(c), q, time.Now()
	c.isQuiet.Store(true)
}

// unquiet takes c off its quiet list; l.mu is held.
func (c *limitedConn) unquiet() {
	if c.elem != nil {
		c.on.Remove(c.elem)
		c.elem, c.on = nil, nil
	}
	c.isQuiet.Store(false)
}

// Read marks the connection busy as soon as a byte of a request arrives.
func (c *limitedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.isQuiet.Load() {
		c.l.mu.Lock()
		c.unquiet()
		c.l.mu.Unlock()
	}
	return n, err
}

// CloseWrite lets the server half-close a connection before closing it,
// as it does after refusing a request (no reset drops its answer).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection and frees its slot, once.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	if c.closed {
		c.l.mu.Unlock()
		return err
	}
	c.closed = true
	c.unquiet()
	c.l.open--
	c.l.mu.Unlock()
	c.l.metrics.connClosed()
	c.l.signal()
	return err
}
