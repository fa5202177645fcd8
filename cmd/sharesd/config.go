package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/craftkit/sharesd/events"
)

// Config is every setting of sharesd. Each is a flag whose default comes
// from an environment variable, so flags, environment and tests share it.
type Config struct {
	NATSURL        string
	RedisURL       string
	RedisCluster   bool
	StreamReplicas int
	HTTPAddr       string
	ShareBase      string
	Env            string
	LogLevel       string
	LogFormat      string
	DedupeHorizon  time.Duration
	MinSeqWait     time.Duration
	BatchSize      int
	MaxFetchBytes  int
	LeaseTTL       time.Duration
	Partitions     int
	BodyCacheBytes int
	ReadyStall     time.Duration
	MaxConns       int
}

// envVars names the environment variable of each setting; the compose-file
// test checks that every variable it sets is one of these.
var envVars = []string{"NATS_URL", "REDIS_URL", "REDIS_CLUSTER", "STREAM_REPLICAS", "HTTP_ADDR", "SHARE_BASE_URL", "CRAFTKIT_ENV", "LOG_LEVEL", "LOG_FORMAT", "DEDUPE_HORIZON", "MIN_SEQ_WAIT", "BATCH_SIZE", "MAX_FETCH_BYTES", "LEASE_TTL", "READY_STALL", "MAX_CONNS", "PARTITIONS", "BODY_CACHE_BYTES"}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// durationVar registers a duration flag defaulting to an environment
// variable; a malformed variable is reported by validate, not ignored.
type envErrors []error

func (e *envErrors) duration(getenv func(string) string, name string, def time.Duration) time.Duration {
	v := getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		*e = append(*e, fmt.Errorf("%s: got %q, want a duration such as 24h or 500ms", name, v))
		return def
	}
	return d
}

func (e *envErrors) bool(getenv func(string) string, name string, def bool) bool {
	v := getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		*e = append(*e, fmt.Errorf("%s: got %q, want true or false", name, v))
		return def
	}
	return b
}

func (e *envErrors) int(getenv func(string) string, name string, def int) int {
	v := getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		*e = append(*e, fmt.Errorf("%s: got %q, want an integer", name, v))
		return def
	}
	return n
}

// newFlagSet returns a flag set for a subcommand with the settings it uses.
// which lists the setting groups: "nats", "redis", "http", "api", "projector".
func newFlagSet(name string, env *environment, cfg *Config, which ...string) (*flag.FlagSet, *envErrors) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	g := env.getenv
	errs := &envErrors{}
	has := func(s string) bool {
		for _, w := range which {
			if w == s {
				return true
			}
		}
		return false
	}
	fs.StringVar(&cfg.LogLevel, "log-level", envOr(g, "LOG_LEVEL", "info"), "log level: debug, info, warn or error (env LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", envOr(g, "LOG_FORMAT", "auto"), "log format: json, text, or auto (text on a terminal) (env LOG_FORMAT)")
	if has("nats") {
		fs.StringVar(&cfg.NATSURL, "nats-url", envOr(g, "NATS_URL", "nats://127.0.0.1:4222"),
			"NATS server URL, or the URLs of a cluster's servers, comma-separated (env NATS_URL)")
	}
	if has("redis") {
		fs.StringVar(&cfg.RedisURL, "redis-url", envOr(g, "REDIS_URL", "redis://127.0.0.1:6379"),
			"Redis URL, redis://, rediss:// or unix://; with -redis-cluster the seed nodes, redis://h1:p1?addr=h2:p2&addr=h3:p3 (env REDIS_URL)")
		fs.BoolVar(&cfg.RedisCluster, "redis-cluster", errs.bool(g, "REDIS_CLUSTER", false), "Redis is a Redis Cluster (env REDIS_CLUSTER)")
		fs.IntVar(&cfg.Partitions, "partitions", errs.int(g, "PARTITIONS", events.DefaultPartitions),
			"partitions the event flow is split into, by render; every process of a deployment must use the same number (env PARTITIONS)")
		fs.DurationVar(&cfg.DedupeHorizon, "dedupe-horizon", errs.duration(g, "DEDUPE_HORIZON", 24*time.Hour), "how long event ids are remembered to drop republished duplicates (env DEDUPE_HORIZON)")
	}
	if has("http") {
		fs.StringVar(&cfg.HTTPAddr, "http-addr", envOr(g, "HTTP_ADDR", ":8080"), "HTTP listen address (env HTTP_ADDR)")
		nofile, def := defaultMaxConns(openFileLimit(), runtime.GOMAXPROCS(0))
		fs.IntVar(&cfg.MaxConns, "max-conns", errs.int(g, "MAX_CONNS", def),
			fmt.Sprintf("most HTTP connections open at once; at the limit the longest-idle connection is closed for a new one "+
				"(env MAX_CONNS; default: the open-file limit, %d, less %d kept for Redis and NATS clients, the listener and files)", nofile, nofile-uint64(def)))
	}
	if has("api") {
		fs.StringVar(&cfg.ShareBase, "share-base-url", envOr(g, "SHARE_BASE_URL", "https://www.craftkit.dev"), "share base of projects without their own (env SHARE_BASE_URL)")
		fs.StringVar(&cfg.Env, "env", envOr(g, "CRAFTKIT_ENV", events.EnvLive),
			"key environment this server accepts: "+events.EnvLive+" or "+events.EnvTest+" (env CRAFTKIT_ENV)")
		fs.IntVar(&cfg.BodyCacheBytes, "body-cache-bytes", errs.int(g, "BODY_CACHE_BYTES", 64<<20),
			"heap the API may spend on rendered bodies kept in memory, 0 for none (env BODY_CACHE_BYTES)")
		fs.DurationVar(&cfg.MinSeqWait, "min-seq-wait", errs.duration(g, "MIN_SEQ_WAIT", 2*time.Second), "longest wait of a ?minSeq request (env MIN_SEQ_WAIT)")
	}
	if has("projector") {
		fs.IntVar(&cfg.StreamReplicas, "stream-replicas", errs.int(g, "STREAM_REPLICAS", 1),
			"copies of the streams the projector creates when they are missing: 3 on a JetStream cluster (env STREAM_REPLICAS)")
		fs.IntVar(&cfg.BatchSize, "batch-size", errs.int(g, "BATCH_SIZE", 512), "events applied per Redis round trip (env BATCH_SIZE)")
		fs.IntVar(&cfg.MaxFetchBytes, "max-fetch-bytes", errs.int(g, "MAX_FETCH_BYTES", 8<<20),
			"bytes of events the projector asks NATS for ahead and holds ahead of Redis; raised to twice the server's max payload if that is more (env MAX_FETCH_BYTES)")
		fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", errs.duration(g, "LEASE_TTL", 5*time.Second),
			"how long a projector that died keeps its partition leases before the others take them over (env LEASE_TTL)")
		fs.DurationVar(&cfg.ReadyStall, "ready-stall", errs.duration(g, "READY_STALL", 30*time.Second),
			"how long the projector may apply nothing while events wait before /readyz answers 503 projector_stalled (env READY_STALL)")
	}
	return fs, errs
}

// parse parses args and validates the result, naming both spellings of a
// bad setting.
func parse(fs *flag.FlagSet, errs *envErrors, cfg *Config, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	all := append([]error(nil), *errs...)
	bad := func(flagName, envName, got, want string) {
		all = append(all, fmt.Errorf("-%s / %s: got %q, want %s", flagName, envName, got, want))
	}
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "LOG_LEVEL", cfg.LogLevel, "debug, info, warn or error")
	}
	switch cfg.LogFormat {
	case "auto", "json", "text":
	default:
		bad("log-format", "LOG_FORMAT", cfg.LogFormat, "auto, json or text")
	}
	if fs.Lookup("env") != nil && cfg.Env != events.EnvLive && cfg.Env != events.EnvTest {
		bad("env", "CRAFTKIT_ENV", cfg.Env, events.EnvLive+" or "+events.EnvTest)
	}
	if fs.Lookup("share-base-url") != nil {
		base, err := events.ShareBase(cfg.ShareBase) // the rule of project.updated's shareBase
		if err != nil {
			bad("share-base-url", "SHARE_BASE_URL", cfg.ShareBase, "an absolute http(s) URL without user info, query or fragment, such as https://www.craftkit.dev ("+err.Error()+")")
		}
		cfg.ShareBase = base
	}
	if fs.Lookup("nats-url") != nil {
		for _, one := range strings.Split(cfg.NATSURL, ",") {
			if u, err := url.Parse(strings.TrimSpace(one)); err != nil || u.Host == "" {
				bad("nats-url", "NATS_URL", cfg.NATSURL, "a URL such as nats://127.0.0.1:4222, or several comma-separated")
				break
			}
		}
	}
	if fs.Lookup("redis-url") != nil {
		if cfg.RedisCluster {
			if _, err := redis.ParseClusterURL(cfg.RedisURL); err != nil {
				bad("redis-url", "REDIS_URL", cfg.RedisURL, "with -redis-cluster / REDIS_CLUSTER, seed nodes such as redis://10.0.0.1:6379?addr=10.0.0.2:6379&addr=10.0.0.3:6379 ("+err.Error()+")")
			}
		} else if u, err := url.Parse(cfg.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			bad("redis-url", "REDIS_URL", cfg.RedisURL, "a URL such as redis://127.0.0.1:6379")
		}
		if cfg.DedupeHorizon <= 0 {
			bad("dedupe-horizon", "DEDUPE_HORIZON", cfg.DedupeHorizon.String(), "a positive duration")
		}
	}
	if fs.Lookup("min-seq-wait") != nil && (cfg.MinSeqWait <= 0 || cfg.MinSeqWait > time.Minute) {
		bad("min-seq-wait", "MIN_SEQ_WAIT", cfg.MinSeqWait.String(), "a duration between 1ms and 1m")
	}
	if fs.Lookup("stream-replicas") != nil && (cfg.StreamReplicas < 1 || cfg.StreamReplicas > 5) {
		bad("stream-replicas", "STREAM_REPLICAS", strconv.Itoa(cfg.StreamReplicas), "1 to 5")
	}
	if fs.Lookup("batch-size") != nil && (cfg.BatchSize < 1 || cfg.BatchSize > 10000) {
		bad("batch-size", "BATCH_SIZE", strconv.Itoa(cfg.BatchSize), "1 to 10000")
	}
	if fs.Lookup("max-fetch-bytes") != nil && (cfg.MaxFetchBytes < 64<<10 || cfg.MaxFetchBytes > 1<<30) {
		bad("max-fetch-bytes", "MAX_FETCH_BYTES", strconv.Itoa(cfg.MaxFetchBytes), "65536 to 1073741824")
	}
	if fs.Lookup("body-cache-bytes") != nil && (cfg.BodyCacheBytes < 0 || cfg.BodyCacheBytes > 1<<40) {
		bad("body-cache-bytes", "BODY_CACHE_BYTES", strconv.Itoa(cfg.BodyCacheBytes), "0 to 1099511627776")
	}
	if fs.Lookup("partitions") != nil && (cfg.Partitions < 1 || cfg.Partitions > events.MaxPartitions) {
		bad("partitions", "PARTITIONS", strconv.Itoa(cfg.Partitions), "1 to "+strconv.Itoa(events.MaxPartitions))
	}
	if fs.Lookup("lease-ttl") != nil && (cfg.LeaseTTL < 300*time.Millisecond || cfg.LeaseTTL > 10*time.Minute) {
		bad("lease-ttl", "LEASE_TTL", cfg.LeaseTTL.String(), "a duration between 300ms and 10m")
	}
	if fs.Lookup("ready-stall") != nil && cfg.ReadyStall <= 0 {
		bad("ready-stall", "READY_STALL", cfg.ReadyStall.String(), "a positive duration")
	}
	if fs.Lookup("max-conns") != nil && cfg.MaxConns < 2 {
		bad("max-conns", "MAX_CONNS", strconv.Itoa(cfg.MaxConns), "2 or more")
	}
	return errors.Join(all...)
}

// newLogger builds the process's logger: JSON unless on a terminal.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	text := cfg.LogFormat == "text"
	if cfg.LogFormat == "auto" {
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			text = true
		}
	}
	if text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// defaultMaxConns is the default of -max-conns: the open-file limit nofile
// less a reserve for everything else that holds a descriptor: the two Redis
// clients' pools (10 connections per CPU each), the NATS connection, the
// listener, standard streams and the files the runtime and the metrics
// open. A limit too small for that reserve leaves half to the server. It
// returns nofile too, for the flag's help.
func defaultMaxConns(nofile uint64, procs int) (uint64, int) {
	reserve := uint64(128 + 20*procs)
	if nofile < 2*reserve {
		return nofile, int(max(nofile/2, 2))
	}
	return nofile, int(min(nofile-reserve, 1<<24))
}
