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
		mu    sync.Mutex
		res   loadResult
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+d)
	var c0 cpuClock
	cpuOnce := sync.OnceFunc(func() { c0 = cpu() })
	time.AfterFunc(warmup, cpuOnce)
	for k, c := range conns {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<14)
			var n, errs int
			var body int64
			for i := k; ctx.Err() == nil; i++ {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				status, size, err := c.do(reqs[i%len(reqs)])
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
					break
				}
				if t0.Before(measureFrom) {
					continue
				}
				lat = append(lat, time.Since(t0))
				n++
				body += int64(size)
				if status != want {
					errs++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.requests += n
			res.errors += errs
			res.bytes += body
			mu.Unlock()
		})
	}
	wg.Wait()
	cpuOnce()
	res.elapsed = time.Since(measureFrom)
	res.cpu = cpu().since(c0)
	slices.Sort(res.lat)
	if first != nil {
		return res, fmt.Errorf("load on %s: %w", addr, first)
	}
	return res, nil
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
	total := int64(d / interval)
	var (
		next  atomic.Int64
		mu    sync.Mutex
		res   loadResult
		first error
		wg    sync.WaitGroup
	)
	c0 := cpu()
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<12)
			var errs int
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					break
				}
				due := start.Add(time.Duration(i) * interval)
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait) // pacing the generator, not synchronising
				}
				status, _, err := c.do(reqs[int(i)%len(reqs)])
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
					break
				}
				lat = append(lat, time.Since(due))
				if status != want {
					errs++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.requests += len(lat)
			res.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.cpu = cpu().since(c0)
	slices.Sort(res.lat)
	if first != nil {
		return res, fmt.Errorf("open-loop load on %s: %w", addr, first)
	}
	return res, nil
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
