package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/craftkit/sharesd/cmd/internal/local"
	"github.com/craftkit/sharesd/events"
	"github.com/craftkit/sharesd/projector"
)

// openNATS connects b.js to -nats-url, or to an embedded server storing
// under dir, and checks that the stream is empty. done closes them.
func (b *bench) openNATS(ctx context.Context, dir string, done *cleanup) error {
	url := b.cfg.NATSURL
	if url == "" {
		ns, err := startNATS(dir + "/nats")
		if err != nil {
			return err
		}
		done.add(func() { ns.Shutdown(); ns.WaitForShutdown() })
		url = ns.ClientURL()
	}
	nc, js, err := connectNATS(url, b.pubErrs)
	if err != nil {
		return err
	}
	done.add(nc.Close)
	b.js = js
	return emptyStream(ctx, js)
}

// openRedis connects b.rdb to -redis-url, or to a redis-server child
// under dir, and checks that its database is empty. done closes them.
func (b *bench) openRedis(ctx context.Context, dir string, done *cleanup) error {
	b.redisURL = b.cfg.RedisURL
	if b.redisURL == "" {
		rs, err := startRedis(dir)
		if err != nil {
			return err
		}
		done.add(rs.Stop)
		b.redisURL = rs.URL
	}
	rdb, err := redisClient(b.redisURL, false, 4)
	if err != nil {
		return err
	}
	done.add(func() { _ = rdb.Close() })
	b.rdb = rdb
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n > 0 {
		return fmt.Errorf("-redis-url: want an empty database (the bench flushes it), got %d keys (err %v)", n, err)
	}
	return nil
}

// startNATS runs an embedded NATS server with JetStream on a random
// loopback port, storing the stream under dir.
func startNATS(dir string) (*server.Server, error) {
	return local.NATS("127.0.0.1", server.RANDOM_PORT, dir)
}

// connectNATS connects and returns a JetStream handle that allows many
// asynchronous publishes in flight and records their failures in pubErrs.
func connectNATS(url string, pubErrs *publishErrors) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("sharesbench"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("-nats-url: connect: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(pubErrs.record))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// emptyStream creates the streams when missing and refuses a CRAFTKIT
// stream that already holds events: the bench measures its own workload.
func emptyStream(ctx context.Context, js jetstream.JetStream) error {
	if err := projector.EnsureStreams(ctx, js); err != nil {
		return err
	}
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return err
	}
	if n := s.CachedInfo().State.Msgs; n > 0 {
		return fmt.Errorf("stream %s already holds %d events; point -nats-url at a server with an empty stream (or leave it out)", events.Stream, n)
	}
	return nil
}

// startRedis runs redis-server on a free loopback port (local.StartRedis).
func startRedis(dir string) (*local.Redis, error) {
	r, err := local.StartRedis(dir)
	if errors.Is(err, local.ErrNoRedis) {
		return nil, errors.New("redis-server not found on PATH: install it (apt-get install -y redis-server, or make deps) or pass -redis-url")
	}
	return r, err
}

// redisClient makes a client with sharesd's options (local.RedisOptions) for
// the projector (forAPI false) or the API (short timeouts, no retries).
func redisClient(url string, forAPI bool, pool int) (*redis.Client, error) {
	opt, err := local.RedisOptions(url, forAPI)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	if pool > 0 {
		opt.PoolSize = pool
	}
	return redis.NewClient(opt), nil
}

// redisInfo reads numeric fields of INFO.
func redisInfo(ctx context.Context, rdb *redis.Client, section string) (map[string]float64, error) {
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("redis info %s: %w", section, err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			m[k] = f
		}
	}
	return m, nil
}

// usedMemory is Redis's used_memory, in bytes.
func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	m, err := redisInfo(ctx, rdb, "memory")
	return int64(m["used_memory"]), err
}

// cpuClock samples the CPU time used so far by this process and by Redis,
// so a phase can say which of the two was busy.
type cpuClock struct {
	wall, goCPU, redisCPU time.Duration
}

func readCPU(ctx context.Context, rdb *redis.Client) cpuClock {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	c := cpuClock{wall: time.Duration(time.Now().UnixNano()),
		goCPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	if m, err := redisInfo(ctx, rdb, "cpu"); err == nil {
		c.redisCPU = time.Duration((m["used_cpu_sys"] + m["used_cpu_user"]) * float64(time.Second))
	}
	return c
}

// usage is the CPU each side used over a phase, in cores.
type usage struct{ goCores, redisCores float64 }

func (c cpuClock) since(prev cpuClock) usage {
	wall := float64(c.wall - prev.wall)
	if wall <= 0 {
		return usage{}
	}
	return usage{goCores: float64(c.goCPU-prev.goCPU) / wall, redisCores: float64(c.redisCPU-prev.redisCPU) / wall}
}

// machine describes where the bench ran.
type machine struct {
	CPUs        int
	CPUModel    string
	GoVersion   string
	Redis       string
	NATSServer  string
	Date        string
	Hostname    string
	CommandLine string
	LoadBefore  string // /proc/loadavg when the bench started
}

// loadAverage is the first three fields of /proc/loadavg: other work on
// the machine shows there, and skews every figure of a run.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func describeMachine(ctx context.Context, rdb *redis.Client) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), NATSServer: server.VERSION,
		Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), CommandLine: strings.Join(os.Args, " "),
		LoadBefore: loadAverage()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if s, err := rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m.Redis = v
			}
		}
	}
	return m
}
