package main

// No Docker engine runs here, so these tests read docker-compose.yml (its
// default stack and its cluster profile), deploy/k8s/*.yaml,
// deploy/k8s/cluster/*.yaml and deploy/Dockerfile and check what a typo
// would break only on someone else's machine: pinned images, environment
// names that the subcommand really reads and values it accepts,
// healthchecks and probes, dependencies, commands that are real
// subcommands, and the clusters' routes and nodes.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v4"
)

const repoRoot = "../.."

// composeFile is the part of docker-compose.yml the checks read, in the
// long forms they require (a list command, a map environment, depends_on
// with conditions).
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Restart  string   `yaml:"restart"`
	Profiles []string `yaml:"profiles"`
	Ports    []string `yaml:"ports"`
	Volumes  []string `yaml:"volumes"`
}

func readCompose(t testing.TB) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return f
}

// subcommandEnv is the set of environment variables subcommand name reads,
// from the "(env NAME)" of its -h output.
func subcommandEnv(t testing.TB, name string) map[string]bool {
	t.Helper()
	var stderr bytes.Buffer
	err := run(context.Background(), []string{name, "-h"}, func(string) string { return "" }, strings.NewReader(""), io.Discard, &stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("sharesd %s -h: %v", name, err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`).FindAllStringSubmatch(stderr.String(), -1) {
		names[m[1]] = true
	}
	if len(names) == 0 {
		t.Fatalf("sharesd %s -h names no environment variable:\n%s", name, stderr.String())
	}
	return names
}

func isSubcommand(name string) bool {
	return slices.ContainsFunc(commands(), func(c command) bool { return c.name == name })
}

// checkImage reports an image without a tag, or tagged latest.
func checkImage(t testing.TB, where, image string) {
	t.Helper()
	name, _, _ := strings.Cut(image, "@")
	slash := strings.LastIndex(name, "/")
	_, tag, ok := strings.Cut(name[slash+1:], ":")
	if !ok || tag == "" || tag == "latest" {
		t.Errorf("%s: image %q is not pinned: want a version tag, not latest", where, image)
	}
}

// checkEnv reports environment names that config.go does not know or that
// the subcommand does not read.
func checkEnv(t testing.TB, where, subcommand string, names []string) {
	t.Helper()
	reads := subcommandEnv(t, subcommand)
	for _, n := range names {
		if !slices.Contains(envVars, n) {
			t.Errorf("%s: environment variable %s is not in envVars of config.go", where, n)
		}
		if !reads[n] {
			t.Errorf("%s: sharesd %s does not read %s (see sharesd %s -h)", where, subcommand, n, subcommand)
		}
	}
}

// addrPort is the port of a listen address such as ":9090".
func addrPort(t testing.TB, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("HTTP_ADDR %q: %v", addr, err)
	}
	return p
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	f := readCompose(t)
	for _, name := range []string{"nats", "redis", "seed", "projector", "api"} {
		if _, ok := f.Services[name]; !ok {
			t.Errorf("docker-compose.yml: no service %s", name)
		}
	}
	for name, s := range f.Services {
		where := "docker-compose.yml: " + name
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s: neither image nor build", where)
		}
		if s.Image != "" {
			checkImage(t, where, s.Image)
		}
		for dep, d := range s.DependsOn {
			ds, ok := f.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s: depends on %s, which is not a service", where, dep)
			case d.Condition == "service_healthy" && ds.Healthcheck == nil:
				t.Errorf("%s: waits for %s to be healthy, which has no healthcheck", where, dep)
			case d.Condition == "service_completed_successfully" && ds.Restart != "no":
				t.Errorf("%s: waits for %s to complete, which is not one-shot (restart: %q)", where, dep, ds.Restart)
			case d.Condition != "service_healthy" && d.Condition != "service_completed_successfully":
				t.Errorf("%s: depends on %s with condition %q, want service_healthy", where, dep, d.Condition)
			}
		}
		if s.Build == nil {
			continue
		}
		// A service built from deploy/Dockerfile runs /sharesd <command>.
		if got, want := s.Build.Dockerfile, "deploy/Dockerfile"; got != want || s.Build.Context != "." {
			t.Errorf("%s: builds %s in %q, want %s in .", where, got, s.Build.Context, want)
		}
		if len(s.Command) == 0 || !isSubcommand(s.Command[0]) {
			t.Errorf("%s: command %q does not start with a sharesd subcommand", where, s.Command)
			continue
		}
		checkEnv(t, where, s.Command[0], slices.Sorted(maps.Keys(s.Environment)))
		checkConfig(t, where, s.Environment)
		// The URLs name services it waits for.
		for _, v := range []string{"NATS_URL", "REDIS_URL"} {
			for _, host := range urlHosts(t, where, v, s.Environment) {
				if d, ok := s.DependsOn[host]; !ok || d.Condition != "service_healthy" {
					t.Errorf("%s: %s points at %s but does not wait for it to be healthy", where, v, host)
				}
			}
		}
		if hc := s.Healthcheck; hc != nil {
			checkSharesdHealthcheck(t, where, hc.Test, s.Environment["HTTP_ADDR"])
		}
	}

	for _, name := range []string{"nats", "redis", "projector", "api"} {
		if hc := f.Services[name].Healthcheck; hc == nil || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
			t.Errorf("docker-compose.yml: %s has no healthcheck test", name)
		}
	}
	if got := f.Services["seed"]; got.Restart != "no" || len(got.Command) == 0 || got.Command[0] != "seed" {
		t.Errorf("docker-compose.yml: seed runs %q with restart %q, want the one-shot seed with restart \"no\"", got.Command, got.Restart)
	}
	for _, name := range []string{"projector", "api"} {
		if d, ok := f.Services[name].DependsOn["redis"]; !ok || d.Condition != "service_healthy" {
			t.Errorf("docker-compose.yml: %s does not wait for redis to be healthy", name)
		}
	}
	redis := f.Services["redis"].Command
	if i := slices.Index(redis, "--maxmemory-policy"); i < 0 || i+1 >= len(redis) || redis[i+1] != "noeviction" {
		t.Errorf("docker-compose.yml: redis runs %q, want --maxmemory-policy noeviction", redis)
	}
	nats := f.Services["nats"]
	if !slices.Contains(nats.Command, "-js") || !slices.Contains(nats.Command, "8222") {
		t.Errorf("docker-compose.yml: nats runs %q, want JetStream (-js) and monitoring on 8222 (-m 8222)", nats.Command)
	}
	if hc := nats.Healthcheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), ":8222/healthz") {
		t.Errorf("docker-compose.yml: the nats healthcheck does not ask the monitoring port's /healthz")
	}
}

// checkConfig reports settings that sharesd would refuse at start: env is
// parsed and validated with every setting group, as a subcommand parses its
// own.
func checkConfig(t testing.TB, where string, env map[string]string) {
	t.Helper()
	var cfg Config
	e := &environment{getenv: func(k string) string { return env[k] }, stderr: io.Discard}
	fs, errs := newFlagSet("check", e, &cfg, "nats", "redis", "http", "api", "projector")
	if err := parse(fs, errs, &cfg, nil); err != nil {
		t.Errorf("%s: sharesd refuses its settings: %v", where, err)
	}
}

// urlHosts returns the hosts that variable v of env names: every server of
// a comma-separated NATS_URL; every seed node of a cluster REDIS_URL.
func urlHosts(t testing.TB, where, v string, env map[string]string) []string {
	t.Helper()
	value := env[v]
	if value == "" {
		return nil
	}
	if v == "REDIS_URL" && env["REDIS_CLUSTER"] == "true" {
		opts, err := redis.ParseClusterURL(value)
		if err != nil {
			t.Errorf("%s: %s: %v", where, v, err)
			return nil
		}
		var hosts []string
		for _, a := range opts.Addrs {
			host, _, _ := net.SplitHostPort(a)
			hosts = append(hosts, host)
		}
		return hosts
	}
	var hosts []string
	for _, one := range strings.Split(value, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil {
			t.Errorf("%s: %s: %v", where, v, err)
			continue
		}
		hosts = append(hosts, u.Hostname())
	}
	return hosts
}

// checkSharesdHealthcheck checks a healthcheck that runs the image's own
// binary: a real subcommand, asking the port the service listens on.
func checkSharesdHealthcheck(t testing.TB, where string, test []string, httpAddr string) {
	t.Helper()
	if len(test) < 3 || test[0] != "CMD" || test[1] != "/sharesd" {
		t.Errorf("%s: healthcheck %q, want [CMD /sharesd healthcheck …] (the image has no shell or curl)", where, test)
		return
	}
	if !isSubcommand(test[2]) {
		t.Errorf("%s: healthcheck runs sharesd %s, not a subcommand", where, test[2])
	}
	i := slices.Index(test, "-url")
	if i < 0 || i+1 >= len(test) {
		return // the default: /healthz on the port of HTTP_ADDR
	}
	u, err := url.Parse(test[i+1])
	if err != nil {
		t.Errorf("%s: healthcheck -url: %v", where, err)
		return
	}
	if httpAddr == "" {
		httpAddr = ":8080"
	}
	if got, want := u.Port(), addrPort(t, httpAddr); got != want {
		t.Errorf("%s: healthcheck asks port %s, but the service listens on %s", where, got, want)
	}
	if u.Path != "/healthz" && u.Path != "/readyz" {
		t.Errorf("%s: healthcheck asks %s, want /healthz or /readyz", where, u.Path)
	}
}

// k8sObject is one document of deploy/k8s/*.yaml, decoded loosely.
type k8sObject struct {
	file string
	Kind string                `yaml:"kind"`
	Meta struct{ Name string } `yaml:"metadata"`
	Data map[string]string     `yaml:"data"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name string `yaml:"name"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// readK8s reads dir/*.yaml (dir from the repository's top level, such as
// deploy/k8s).
func readK8s(t testing.TB, dir string) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s/*.yaml: %v (%d files)", dir, err, len(files))
	}
	var objs []k8sObject
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if o.Kind == "" {
				t.Errorf("%s: a document without kind", file)
				continue
			}
			o.file = filepath.Base(file)
			objs = append(objs, o)
		}
	}
	return objs
}

// k8sWorkload is the sharesd container of a Deployment, with its
// environment (env and envFrom ConfigMaps) and its replicas.
type k8sWorkload struct {
	where    string
	c        k8sContainer
	env      map[string]string
	replicas int
	strategy string
}

// checkK8sDeployments checks every Deployment of objs (read from dir) as
// any sharesd workload must be, and returns them by subcommand.
func checkK8sDeployments(t testing.TB, dir string, objs []k8sObject) map[string]k8sWorkload {
	t.Helper()
	configMaps := map[string]map[string]string{}
	for _, o := range objs {
		if o.Kind == "ConfigMap" {
			configMaps[o.Meta.Name] = o.Data
		}
	}
	workloads := map[string]k8sWorkload{} // by subcommand
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		where := dir + "/" + o.file + ": " + o.Meta.Name
		if !o.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: pod securityContext.runAsNonRoot is not true", where)
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			cw := where + "/" + c.Name
			checkImage(t, cw, c.Image)
			if len(c.Args) == 0 || !isSubcommand(c.Args[0]) {
				t.Errorf("%s: args %q do not start with a sharesd subcommand", cw, c.Args)
				continue
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = ""
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					continue
				}
				data, ok := configMaps[ef.ConfigMapRef.Name]
				if !ok {
					t.Errorf("%s: envFrom ConfigMap %s is not in %s", cw, ef.ConfigMapRef.Name, dir)
				}
				for k, v := range data {
					env[k] = v
				}
			}
			checkEnv(t, cw, c.Args[0], slices.Sorted(maps.Keys(env)))
			checkConfig(t, cw, env)
			if !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				t.Errorf("%s: want readOnlyRootFilesystem: true and allowPrivilegeEscalation: false", cw)
			}
			if c.Resources.Requests["cpu"] == "" || c.Resources.Limits["memory"] == "" {
				t.Errorf("%s: want a cpu request and a memory limit", cw)
			}
			addr := env["HTTP_ADDR"]
			if addr == "" {
				addr = ":8080"
			}
			checkProbe(t, cw+" readinessProbe", c.ReadinessProbe, "/readyz", c, addrPort(t, addr))
			checkProbe(t, cw+" livenessProbe", c.LivenessProbe, "/healthz", c, addrPort(t, addr))
			replicas := 1 // the Kubernetes default
			if o.Spec.Replicas != nil {
				replicas = *o.Spec.Replicas
			}
			workloads[c.Args[0]] = k8sWorkload{where: where, c: c, env: env, replicas: replicas, strategy: o.Spec.Strategy.Type}
		}
	}
	for _, name := range []string{"api", "projector"} {
		if _, ok := workloads[name]; !ok {
			t.Errorf("%s: no Deployment runs sharesd %s", dir, name)
		}
	}
	if !slices.ContainsFunc(objs, func(o k8sObject) bool { return o.Kind == "Service" && o.Meta.Name == "sharesd-api" }) {
		t.Errorf("%s: no Service sharesd-api", dir)
	}
	return workloads
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	ws := checkK8sDeployments(t, "deploy/k8s", readK8s(t, "deploy/k8s"))
	if w, ok := ws["api"]; ok && w.replicas < 2 {
		t.Errorf("%s: the API runs %d replicas, want 2 or more", w.where, w.replicas)
	}
	if w, ok := ws["projector"]; ok && (w.replicas != 1 || w.strategy != "Recreate") {
		t.Errorf("%s: the projector runs %d replicas with strategy %q, want 1 with Recreate", w.where, w.replicas, w.strategy)
	}
}

// TestKubernetesClusterManifests checks deploy/k8s/cluster: the projector
// with 2 replicas or more (one active and the others standing by on the
// lease today), the API scaled out, both on a Redis Cluster, the projector
// on every server of a JetStream cluster creating its streams R3.
func TestKubernetesClusterManifests(t *testing.T) {
	t.Parallel()
	const dir = "deploy/k8s/cluster"
	objs := readK8s(t, dir)
	ws := checkK8sDeployments(t, dir, objs)
	for name, w := range ws {
		if w.replicas < 2 {
			t.Errorf("%s: sharesd %s runs %d replicas, want 2 or more", w.where, name, w.replicas)
		}
		if got := w.env["REDIS_CLUSTER"]; got != "true" {
			t.Errorf("%s: REDIS_CLUSTER %q, want true", w.where, got)
		}
	}
	if w, ok := ws["projector"]; ok {
		if w.strategy == "Recreate" {
			t.Errorf("%s: strategy Recreate stops every projector at once; want RollingUpdate", w.where)
		}
		if n := len(urlHosts(t, w.where, "NATS_URL", w.env)); n < 3 {
			t.Errorf("%s: NATS_URL names %d servers, want the JetStream cluster's 3", w.where, n)
		}
		if got := w.env["STREAM_REPLICAS"]; got != "3" {
			t.Errorf("%s: STREAM_REPLICAS %q, want 3", w.where, got)
		}
	}
	for _, name := range []string{"sharesd-api", "sharesd-projector"} {
		if !slices.ContainsFunc(objs, func(o k8sObject) bool { return o.Kind == "PodDisruptionBudget" && o.Meta.Name == name }) {
			t.Errorf("%s: no PodDisruptionBudget %s", dir, name)
		}
	}
}

// checkProbe wants an HTTP probe of path on the container port that
// HTTP_ADDR listens on (by number or by the port's name).
func checkProbe(t testing.TB, where string, p *k8sProbe, path string, c k8sContainer, want string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: missing, want httpGet %s", where, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: path %s, want %s", where, p.HTTPGet.Path, path)
	}
	got := ""
	switch v := p.HTTPGet.Port.(type) {
	case int:
		got = strconv.Itoa(v)
	case string:
		for _, cp := range c.Ports {
			if cp.Name == v {
				got = strconv.Itoa(cp.ContainerPort)
			}
		}
	}
	if got != want {
		t.Errorf("%s: port %v is %q, want the HTTP_ADDR port %s", where, p.HTTPGet.Port, got, want)
	}
}

// TestDockerfile checks the image's build: pinned base images, a non-root
// final stage, /sharesd as entrypoint, and the same go build line as
// `make docker-build-check`, which is how CI checks the build without a
// Docker engine.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var from []string
	var user, entrypoint, build string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			from = append(from, f[1])
			user = "" // USER applies to its stage
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		case "RUN":
			if strings.Contains(line, "go build") {
				build = strings.Join(f[1:], " ")
			}
		}
	}
	if len(from) < 2 {
		t.Errorf("deploy/Dockerfile: %d stages, want a multi-stage build", len(from))
	}
	for _, image := range from {
		checkImage(t, "deploy/Dockerfile", image)
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "root" || uid == "0" {
		t.Errorf("deploy/Dockerfile: the final stage runs as %q, want a non-root USER", user)
	}
	if entrypoint != `["/sharesd"]` {
		t.Errorf("deploy/Dockerfile: ENTRYPOINT %s, want [\"/sharesd\"] (compose and k8s pass subcommands)", entrypoint)
	}

	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var check string
	in := false
	for _, line := range strings.Split(string(mk), "\n") {
		switch {
		case strings.HasPrefix(line, "docker-build-check:"):
			in = true
		case in && !strings.HasPrefix(line, "\t"):
			in = false
		case in && check == "" && strings.Contains(line, "go build") && strings.Contains(line, "CGO_ENABLED"):
			check = line[strings.Index(line, "CGO_ENABLED"):]
		}
	}
	if got, want := withoutOutput(check), withoutOutput(build); want == "" || got != want {
		t.Errorf("make docker-build-check builds with\n\t%s\nbut deploy/Dockerfile with\n\t%s", got, want)
	}
	if !strings.HasPrefix(build, "CGO_ENABLED=0 go build") || !strings.HasSuffix(withoutOutput(build), "./cmd/sharesd") {
		t.Errorf("deploy/Dockerfile: RUN %s, want a static CGO_ENABLED=0 go build of ./cmd/sharesd", build)
	}
}

// withoutOutput is a go build command line without its -o argument and
// what follows the package.
func withoutOutput(cmd string) string {
	f := strings.Fields(cmd)
	var out []string
	for i := 0; i < len(f); i++ {
		if f[i] == "-o" {
			i++
			continue
		}
		out = append(out, f[i])
		if f[i] == "./cmd/sharesd" {
			break
		}
	}
	return strings.Join(out, " ")
}

// The cluster profile's services (docker compose --profile cluster up).
var (
	clusterNATS  = []string{"nats-1", "nats-2", "nats-3"}
	clusterRedis = []string{"redis-1", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6"}
)

// TestComposeClusterProfile checks the cluster profile: its services start
// only with --profile cluster and never under the default stack, the NATS
// nodes (parsed by nats-server's own flag parser) route to each other with
// JetStream, the six Redis nodes run in cluster mode and are created as
// one cluster of 3 masters with a replica each, and the sharesd services
// point at all of it with the cluster settings.
func TestComposeClusterProfile(t *testing.T) {
	t.Parallel()
	f := readCompose(t)
	bySubcommand := map[string][]string{}
	for name, s := range f.Services {
		where := "docker-compose.yml: " + name
		if len(s.Profiles) == 0 {
			for dep := range s.DependsOn {
				if len(f.Services[dep].Profiles) > 0 {
					t.Errorf("%s: the default stack depends on %s of profile %q", where, dep, f.Services[dep].Profiles)
				}
			}
			continue
		}
		if !slices.Equal(s.Profiles, []string{"cluster"}) {
			t.Errorf("%s: profiles %q, want [cluster]", where, s.Profiles)
		}
		if s.Build != nil && len(s.Command) > 0 {
			bySubcommand[s.Command[0]] = append(bySubcommand[s.Command[0]], name)
		}
	}
	for _, name := range slices.Concat(clusterNATS, clusterRedis, []string{"redis-cluster-create"}) {
		if s, ok := f.Services[name]; !ok || !slices.Contains(s.Profiles, "cluster") {
			t.Errorf("docker-compose.yml: no service %s in profile cluster", name)
		}
	}
	for sub, want := range map[string]int{"seed": 1, "projector": 2, "api": 2} {
		if got := len(bySubcommand[sub]); got != want {
			t.Errorf("docker-compose.yml: the cluster profile runs sharesd %s in %d services %q, want %d", sub, got, bySubcommand[sub], want)
		}
	}

	checkClusterNATS(t, f)
	checkClusterRedis(t, f)
	for _, name := range slices.Concat(bySubcommand["seed"], bySubcommand["projector"], bySubcommand["api"]) {
		s, where := f.Services[name], "docker-compose.yml: "+name
		if s.Command[0] != "api" {
			if got := urlHosts(t, where, "NATS_URL", s.Environment); !slices.Equal(slices.Sorted(slices.Values(got)), clusterNATS) {
				t.Errorf("%s: NATS_URL names %q, want the three NATS nodes %q", where, got, clusterNATS)
			}
			if got := s.Environment["STREAM_REPLICAS"]; got != "3" {
				t.Errorf("%s: STREAM_REPLICAS %q, want 3 (a copy of each stream on each NATS node)", where, got)
			}
		}
		if s.Command[0] == "seed" {
			continue
		}
		if got := s.Environment["REDIS_CLUSTER"]; got != "true" {
			t.Errorf("%s: REDIS_CLUSTER %q, want true", where, got)
		}
		for _, host := range urlHosts(t, where, "REDIS_URL", s.Environment) {
			if !slices.Contains(clusterRedis, host) {
				t.Errorf("%s: REDIS_URL names %s, which is not a node of the Redis Cluster", where, host)
			}
		}
		if d := s.DependsOn["redis-cluster-create"]; d.Condition != "service_completed_successfully" {
			t.Errorf("%s: does not wait for redis-cluster-create to complete", where)
		}
	}
	checkHostPorts(t, f)
}

// checkClusterNATS parses each NATS node's command with nats-server's flag
// parser: JetStream with monitoring on 8222, its own name and volume, one
// cluster name, and routes to the three nodes.
func checkClusterNATS(t testing.TB, f composeFile) {
	t.Helper()
	cluster := ""
	for _, name := range clusterNATS {
		s, where := f.Services[name], "docker-compose.yml: "+name
		if s.Image != f.Services["nats"].Image {
			t.Errorf("%s: image %s, want the default stack's %s", where, s.Image, f.Services["nats"].Image)
		}
		opts, err := server.ConfigureOptions(flag.NewFlagSet(name, flag.ContinueOnError), s.Command, nil, nil, nil)
		if err != nil {
			t.Errorf("%s: nats-server %q: %v", where, s.Command, err)
			continue
		}
		if !opts.JetStream || opts.HTTPPort != 8222 || opts.StoreDir == "" {
			t.Errorf("%s: nats-server %q, want JetStream (-js, -sd) and monitoring on 8222", where, s.Command)
		}
		if opts.ServerName != name {
			t.Errorf("%s: server name %q, want %s (JetStream clusters need unique names)", where, opts.ServerName, name)
		}
		if cluster == "" {
			cluster = opts.Cluster.Name
		}
		if opts.Cluster.Name == "" || opts.Cluster.Name != cluster || opts.Cluster.Port == 0 {
			t.Errorf("%s: cluster %q on port %d, want cluster %q listening for routes", where, opts.Cluster.Name, opts.Cluster.Port, cluster)
		}
		var routes []string
		for _, r := range opts.Routes {
			if r.Port() != strconv.Itoa(opts.Cluster.Port) {
				t.Errorf("%s: route %s, want the route port %d", where, r, opts.Cluster.Port)
			}
			routes = append(routes, r.Hostname())
		}
		if slices.Sort(routes); !slices.Equal(routes, clusterNATS) {
			t.Errorf("%s: routes to %q, want the three nodes %q", where, routes, clusterNATS)
		}
		checkOwnVolume(t, f, name, "/data")
		if hc := s.Healthcheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), ":8222/healthz") {
			t.Errorf("%s: the healthcheck does not ask the monitoring port's /healthz", where)
		}
	}
}

// checkClusterRedis checks the six Redis nodes (cluster mode, the default
// redis's persistence and eviction settings, announcing their service
// names) and the one-shot that makes them a cluster.
func checkClusterRedis(t testing.TB, f composeFile) {
	t.Helper()
	flagValue := func(cmd []string, name string) string {
		if i := slices.Index(cmd, name); i >= 0 && i+1 < len(cmd) {
			return cmd[i+1]
		}
		return ""
	}
	for _, name := range clusterRedis {
		s, where := f.Services[name], "docker-compose.yml: "+name
		if s.Image != f.Services["redis"].Image {
			t.Errorf("%s: image %s, want the default stack's %s", where, s.Image, f.Services["redis"].Image)
		}
		for flagName, want := range map[string]string{
			"--cluster-enabled": "yes", "--maxmemory-policy": "noeviction", "--appendonly": "yes",
			"--cluster-announce-hostname": name, "--cluster-preferred-endpoint-type": "hostname",
		} {
			if got := flagValue(s.Command, flagName); got != want {
				t.Errorf("%s: %s %q, want %q", where, flagName, got, want)
			}
		}
		if hc := s.Healthcheck; hc == nil || len(hc.Test) < 2 {
			t.Errorf("%s: no healthcheck", where)
		}
		checkOwnVolume(t, f, name, "/data")
	}

	create, where := f.Services["redis-cluster-create"], "docker-compose.yml: redis-cluster-create"
	if create.Restart != "no" {
		t.Errorf("%s: restart %q, want the one-shot's \"no\"", where, create.Restart)
	}
	if got := strings.Fields(create.Environment["NODES"]); !slices.Equal(got, clusterRedis) {
		t.Errorf("%s: NODES %q, want the six nodes %q", where, got, clusterRedis)
	}
	script := strings.Join(create.Command, " ")
	for _, want := range []string{"redis-cli --cluster create", "--cluster-replicas 1", "--cluster-yes", "for n in $$NODES", "cluster_state:ok"} {
		if !strings.Contains(script, want) {
			t.Errorf("%s: the command does not contain %q:\n%s", where, want, script)
		}
	}
	for _, name := range clusterRedis {
		if d, ok := create.DependsOn[name]; !ok || d.Condition != "service_healthy" {
			t.Errorf("%s: does not wait for %s to be healthy", where, name)
		}
	}
}

// checkOwnVolume wants service name to keep dir in a named volume that no
// other service mounts.
func checkOwnVolume(t testing.TB, f composeFile, name, dir string) {
	t.Helper()
	var vol string
	for _, v := range f.Services[name].Volumes {
		if src, dst, _ := strings.Cut(v, ":"); dst == dir {
			vol = src
		}
	}
	if vol == "" {
		t.Errorf("docker-compose.yml: %s keeps %s in no volume", name, dir)
		return
	}
	for other, s := range f.Services {
		if other != name && slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasPrefix(v, vol+":") }) {
			t.Errorf("docker-compose.yml: %s and %s share the volume %s", name, other, vol)
		}
	}
}

// checkHostPorts wants every published host port used once, so the
// cluster profile runs beside the default stack.
func checkHostPorts(t testing.TB, f composeFile) {
	t.Helper()
	used := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(f.Services)) {
		for _, p := range f.Services[name].Ports {
			host, _, ok := strings.Cut(p, ":")
			if !ok {
				t.Errorf("docker-compose.yml: %s publishes %q, want host:container", name, p)
				continue
			}
			if other, dup := used[host]; dup {
				t.Errorf("docker-compose.yml: %s and %s both publish host port %s", other, name, host)
			}
			used[host] = name
		}
	}
}
