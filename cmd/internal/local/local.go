// Package local starts the engines of a stack on one machine: an embedded
// NATS server with JetStream and a redis-server child process without
// persistence. `sharesd dev` and the benchmark use it; the tests have their
// own harnesses (events/natstest, projector/readmodel/redistest).
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
)

// RedisOptions are the Redis client options of sharesd's two roles. The
// API's has short timeouts and no retries, so a dead Redis is a 503 within a
// second; the projector's waits longer (its batch deadline is one read
// timeout) and lets go-redis retry. The benchmark uses the same.
func RedisOptions(url string, forAPI bool) (*redis.Options, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opt.ContextTimeoutEnabled = true
	if forAPI {
		opt.DialTimeout = 300 * time.Millisecond
		opt.ReadTimeout = 400 * time.Millisecond // a new connection may wait twice (handshake, then the command)
		opt.WriteTimeout = 400 * time.Millisecond
		opt.PoolTimeout = 500 * time.Millisecond
		opt.MaxRetries = -1 // no retries: answer 503 within the second
		opt.Protocol = 2    // RESP2: no push-notification handling on the hot path
	} else {
		opt.DialTimeout = 2 * time.Second
		opt.ReadTimeout = 5 * time.Second
		opt.WriteTimeout = 5 * time.Second
	}
	return opt, nil
}

// NATS runs an embedded NATS server with JetStream on host:port (port -1
// picks a free one), storing the stream under dir.
func NATS(host string, port int, dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		Host: host, Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready after 10s")
	}
	return ns, nil
}

// ErrNoRedis is returned by StartRedis when redis-server is not on PATH.
var ErrNoRedis = errors.New("redis-server not found on PATH")

// Redis is a redis-server child process.
type Redis struct {
	URL string
	cmd *exec.Cmd
	out bytes.Buffer
}

// StartRedis runs redis-server on a free loopback port with --save ""
// --appendonly no and noeviction, its files under dir, and waits until it
// answers PING.
func StartRedis(dir string) (*Redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedis
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	r := &Redis{URL: "redis://127.0.0.1:" + port}
	r.cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--maxmemory-policy", "noeviction")
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, MaxRetries: -1})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return r, nil
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("redis-server on port %s: not answering after 10s: %v\n%s", port, err, r.out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a child process that is starting
	}
}

// Stop kills the child and waits for it.
func (r *Redis) Stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}
