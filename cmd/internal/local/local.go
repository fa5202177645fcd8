// Package local gives `sharesd dev` and the benchmark the engines of a
// stack on one machine, started by the same code as the tests' (an
// embedded NATS server with JetStream from events/natstest, a redis-server
// child process without persistence from projector/readmodel/redistest),
// and the Redis client options of sharesd's two roles.
package local

import (
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/events/natstest"
	"github.com/craftkit/sharesd/projector/readmodel/redistest"
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
// picks a free one), storing the stream under dir: natstest.Launch, the
// starter the tests use too.
func NATS(host string, port int, dir string) (*server.Server, error) {
	return natstest.Launch(host, port, dir)
}

// ErrNoRedis is returned by StartRedis when redis-server is not on PATH.
var ErrNoRedis = redistest.ErrNotFound

// Redis is a redis-server child process; its URL is redis://host:port and
// Stop kills it.
type Redis = redistest.Server

// StartRedis runs redis-server on a free loopback port with --save ""
// --appendonly no and noeviction, its files under dir, and waits until it
// answers PING: redistest.Launch, the starter the tests use too.
func StartRedis(dir string) (*Redis, error) { return redistest.Launch(dir) }
