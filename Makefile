# launch — see README.md. Every target works on a fresh machine with Go
# installed; .ci/run installs the Debian packages the tests use.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: all build test demo bench bench-fairness bench-control bench-reload bench-naive-reload bench-proxy bench-validate bench-vs-pm2 e2e fuzz clean

all: build

## build: bin/launch (static) and the example apps
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/launch ./cmd/launch
	$(GO) build -trimpath -o bin/hello ./examples/hello
	$(GO) build -trimpath -o bin/crashy ./examples/crashy

## test: vet, then every package's tests with the race detector (< 5 min on 2 cores)
test:
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 5m ./...

## demo: run the bundled hello app on every CPU (Ctrl-C to stop)
demo: build
	bin/launch -i max examples/hello/app.yaml

## bench: every benchmark below, one after the other (about 60 min)
bench: build
	bench/overhead.sh
	bench/fairness.sh
	bench/control.sh
	bench/reload.sh
	bench/naive-reload.sh
	bench/proxy.sh
	bench/validate.sh
	bench/vs-pm2.sh

## bench-fairness: shared vs reuseport: per-worker share, Jain's index, p99 (about 6 min)
bench-fairness: build
	bench/fairness.sh

## bench-validate: launch bench's load generator vs wrk -t1 on the Go example, same load; ratio must be >= 0.9 (about 2 min)
bench-validate:
	bench/validate.sh

## bench-vs-pm2: 1 vs 2 instances, keep-alive and new-connection: Go and Node examples under launch, Node under PM2 cluster mode (about 3 min)
bench-vs-pm2:
	bench/vs-pm2.sh

## bench-control: master RSS, idle CPU and `launch ls` latency at 1/50/200 workers, vs PM2 (about 3 min)
bench-control: build
	bench/control.sh

## bench-reload: rolling reload under load, launch vs PM2: failures, p99, reload time (about 6 min)
bench-reload: build
	bench/reload.sh

## bench-naive-reload: failed requests per reload of an app that does not drain, shared vs reuseport (about 3 min)
bench-naive-reload: build
	bench/naive-reload.sh

## bench-proxy: proxy mode vs going direct vs nginx as a reverse proxy, http and tcp (about 5 min)
bench-proxy: build
	bench/proxy.sh

## e2e: the end-to-end and supervisor tests (real processes, signals, load on
## 127.0.0.1) five times over with -race, to shake out flakes (about 12 min)
e2e: build
	CGO_ENABLED=1 $(GO) test -race -count=5 -timeout 20m ./cmd/launch/ ./recovery/ ./workers/ ./balancer/

## fuzz: fuzz the app file parser for a minute
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./config/

clean:
	rm -rf bin
