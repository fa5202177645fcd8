# Targets for developers and CI. Tests need redis-server on PATH; `make test`
# installs it with deploy/install-deps.sh. NATS is embedded, nothing to install.

.PHONY: deps test test-short bench fuzz fuzz-stream vet build dev

deps:
	./deploy/install-deps.sh

test: deps
	go test -race -count=1 -timeout 30m ./...

test-short:
	go test -short -count=1 ./...

bench:
	go run ./cmd/sharesbench $(BENCHFLAGS)

fuzz:
	go test ./events/ -run=XXX -fuzz=FuzzDecode -fuzztime=60s

# fuzz-stream runs the stream fuzzer (projector/hostile_test.go) for
# FUZZ_STREAM_TIME (10m by default) instead of the 15s of `make test`; set
# FUZZ_STREAM_SEED to replay the seed a failure logged.
FUZZ_STREAM_TIME ?= 10m
FUZZ_STREAM_SEED ?= 0
fuzz-stream: deps
	go test -race -count=1 -timeout 0 -run 'TestHostileStream$$' -v ./projector/ \
		-args -hostile.duration=$(FUZZ_STREAM_TIME) -hostile.seed=$(FUZZ_STREAM_SEED)

vet:
	go vet ./...
	@unformatted="$$(gofmt -l .)" || exit 1; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt -l: these files need gofmt -w:" >&2; \
		echo "$$unformatted" >&2; \
		exit 1; \
	fi

build:
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/sharesd ./cmd/sharesd

dev:
	go run ./cmd/sharesd dev

# docker-build-check runs the go build of deploy/Dockerfile (the same
# command, into a temporary directory) and starts the binary, so CI checks
# the image's build without a Docker engine. cmd/sharesd/compose_test.go
# keeps this line and the Dockerfile's the same.
.PHONY: docker-build-check
docker-build-check:
	@out="$$(mktemp -d)"; trap 'rm -rf "$$out"' EXIT; \
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$$out/sharesd" ./cmd/sharesd && \
	"$$out/sharesd" help >/dev/null && \
	echo "docker-build-check: CGO_ENABLED=0 go build of ./cmd/sharesd ok"
