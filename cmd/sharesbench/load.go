package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator is in-process and closed-loop: N clients, each with
// one keep-alive HTTP/1.1 connection, send a request, read the whole
// response, and send the next. It speaks just enough HTTP/1.1 to do that
// (a request written from pre-built bytes, a response read by its
// Content-Length), so the generator spends as little of the machine's two
// cores as it can: the API and its ceiling are measured with the same one.

// loadResult is what one load phase measured.
type loadResult struct {
	requests int
	errors   int
	elapsed  time.Duration
	lat      []time.Duration // sorted
	bytes    int64           // body bytes received
	cpu      usage
}

func (r loadResult) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r loadResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

// request builds a GET for path with the given extra header lines.
func request(host, path string, headers ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sharesbench\r\n", path, host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// conn is one keep-alive client connection.
type conn struct {
	c  net.Conn
	r  *bufio.Reader
	hb []byte
}

func dial(addr string) (*conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// do sends req and reads the response; it returns the status and the
// body's length.
func (c *conn) do(req []byte) (int, int, error) {
	if _, err := c.c.Write(req); err != nil {
		return 0, 0, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	length := 0
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, 0, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, 0, err
	}
	return status, length, nil
}

func (c *conn) close() { _ = c.c.Close() }

// closedLoop runs clients connections against addr for warmup+d, each
// sending reqs in turn (starting at a different one), and measures the
// requests completed after warmup. A response with another status than
// want counts as an error.
func closedLoop(ctx context.Context, addr string, reqs [][]byte, want, clients int, warmup, d time.Duration, cpu func() cpuClock) (loadResult, error) {
	conns, err := dialAll(addr, clients)
	if err != nil {
		return loadResult{}, err
	}
	defer closeAll(conns)
	var (
		all tally
		wg  sync.WaitGroup
	)
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+d)
	var c0 cpuClock
	cpuOnce := sync.OnceFunc(func() { c0 = cpu() })
	time.AfterFunc(warmup, cpuOnce)
	for k, c := range conns {
		wg.Go(func() { all.add(c.closed(ctx, reqs, k, want, measureFrom, end)) })
	}
	wg.Wait()
	cpuOnce()
	res := all.res
	res.elapsed = time.Since(measureFrom)
	res.cpu = cpu().since(c0)
	slices.Sort(res.lat)
	if all.first != nil {
		return res, fmt.Errorf("load on %s: %w", addr, all.first)
	}
	return res, nil
}

// closed sends reqs on c in turn, from the k-th, until end or an error, and
// measures those sent from measureFrom on.
func (c *conn) closed(ctx context.Context, reqs [][]byte, k, want int, measureFrom, end time.Time) (loadResult, error) {
	r := loadResult{lat: make([]time.Duration, 0, 1<<14)}
	for i := k; ctx.Err() == nil; i++ {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		status, size, err := c.do(reqs[i%len(reqs)])
		if err != nil {
			return r, err
		}
		if t0.Before(measureFrom) {
			continue
		}
		r.lat = append(r.lat, time.Since(t0))
		r.requests++
		r.bytes += int64(size)
		if status != want {
			r.errors++
		}
	}
	return r, nil
}

// openLoop sends requests at rate per second for d, whatever the answers'
// speed, over up to clients connections, and measures each request's
// latency from the moment it was due (so a slow answer that delays the
// next request counts against the server, not hidden by the generator).
func openLoop(ctx context.Context, addr string, reqs [][]byte, want, clients int, rate float64, d time.Duration, cpu func() cpuClock) (loadResult, error) {
	conns, err := dialAll(addr, clients)
	if err != nil {
		return loadResult{}, err
	}
	defer closeAll(conns)
	interval := time.Duration(float64(time.Second) / rate)
	var (
		all tally
		wg  sync.WaitGroup
	)
	c0 := cpu()
	s := &schedule{start: time.Now(), interval: interval, total: int64(d / interval)}
	for _, c := range conns {
		wg.Go(func() { all.add(c.open(ctx, reqs, want, s)) })
	}
	wg.Wait()
	res := all.res
	res.elapsed = time.Since(s.start)
	res.cpu = cpu().since(c0)
	slices.Sort(res.lat)
	if all.first != nil {
		return res, fmt.Errorf("open-loop load on %s: %w", addr, all.first)
	}
	return res, nil
}

// schedule hands out an open loop's requests, each due interval after the
// one before, to whichever connection is free.
type schedule struct {
	next     atomic.Int64
	start    time.Time
	interval time.Duration
	total    int64
}

// take returns the next request's number and when it is due, or false when
// every request has been handed out.
func (s *schedule) take() (int64, time.Time, bool) {
	i := s.next.Add(1) - 1
	return i, s.start.Add(time.Duration(i) * s.interval), i < s.total
}

// open sends the requests s hands out on c, each at its due time, until
// none is left or an error, and measures each from its due time.
func (c *conn) open(ctx context.Context, reqs [][]byte, want int, s *schedule) (loadResult, error) {
	r := loadResult{lat: make([]time.Duration, 0, 1<<12)}
	for ctx.Err() == nil {
		i, due, ok := s.take()
		if !ok {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait) // pacing the generator, not synchronising
		}
		status, _, err := c.do(reqs[int(i)%len(reqs)])
		if err != nil {
			return r, err
		}
		r.lat = append(r.lat, time.Since(due))
		r.requests++
		if status != want {
			r.errors++
		}
	}
	return r, nil
}

// tally adds up what the clients of one load measured, and keeps the
// first error one of them met.
type tally struct {
	mu    sync.Mutex
	res   loadResult
	first error
}

func (t *tally) add(part loadResult, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.res.lat = append(t.res.lat, part.lat...)
	t.res.requests += part.requests
	t.res.errors += part.errors
	t.res.bytes += part.bytes
	t.first = cmpOr(t.first, err)
}

func dialAll(addr string, n int) ([]*conn, error) {
	conns := make([]*conn, 0, n)
	for range n {
		c, err := dial(addr)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		c.close()
	}
}

// cmpOr keeps the first error.
func cmpOr(err, next error) error {
	if err != nil {
		return err
	}
	return next
}
