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

// RedisClient makes a client of sharesd's role (forAPI, see RedisOptions)
// for url: a Redis Cluster client when cluster is set, url then being
// go-redis's cluster URL with the seed nodes
// (redis://h1:p1?addr=h2:p2&addr=h3:p3), else a single-node client.
func RedisClient(url string, cluster, forAPI bool) (redis.UniversalClient, error) {
	if !cluster {
		opt, err := RedisOptions(url, forAPI)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(opt), nil
	}
	opt, err := RedisClusterOptions(url, forAPI)
	if err != nil {
		return nil, err
	}
	return redis.NewClusterClient(opt), nil
}

// RedisClusterOptions are RedisOptions for a Redis Cluster. The API's
// client follows one redirect (a slot moved by a failover) and otherwise
// answers as on a single node.
func RedisClusterOptions(url string, forAPI bool) (*redis.ClusterOptions, error) {
	opt, err := redis.ParseClusterURL(url)
	if err != nil {
		return nil, err
	}
	opt.ContextTimeoutEnabled = true
	if forAPI {
		opt.DialTimeout = 300 * time.Millisecond
		opt.ReadTimeout = 400 * time.Millisecond
		opt.WriteTimeout = 400 * time.Millisecond
		opt.PoolTimeout = 500 * time.Millisecond
		opt.MaxRetries = -1
		opt.MaxRedirects = 1
		opt.Protocol = 2
	} else {
		opt.DialTimeout = 2 * time.Second
		opt.ReadTimeout = 5 * time.Second
		opt.WriteTimeout = 5 * time.Second
	}
	return opt, nil
}

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
