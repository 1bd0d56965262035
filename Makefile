# Flotilla: a Kubernetes node autoscaler. `make help` lists the targets.
# Needs only Go and the module proxy (plus moto_server for the local AWS).

SHELL      := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT       := $(CURDIR)
TOOLBIN    := $(ROOT)/.bin
BIN        := $(ROOT)/bin
export PATH := $(TOOLBIN):$(PATH)
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X github.com/flotilla-dev/flotilla/services/internal/config.Version=$(VERSION)
# Every module of the workspace (tools/ modules are outside it on purpose).
MODULES    := api gen services/internal services/planner services/actuator services/watcher test
SERVICES   := planner actuator watcher
E2E_TIMEOUT ?= 40m

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

## ---- tools -------------------------------------------------------------

$(TOOLBIN)/.dev-tools: tools/dev/go.mod tools/dev/go.sum
	cd tools/dev && GOWORK=off GOBIN=$(TOOLBIN) go install tool
	touch $@

.PHONY: tools
tools: $(TOOLBIN)/.dev-tools ## build buf, grpcurl, grpc-health-probe, controller-gen, benchstat into .bin

.PHONY: controlplane
controlplane: ## build (or reuse from ~/.cache/flotilla) etcd, kube-apiserver, -scheduler, -controller-manager, kwok
	tools/controlplane/build.sh

.PHONY: jaeger
jaeger: ## build (or reuse from ~/.cache/flotilla) Jaeger v2
	tools/jaeger/build.sh

## ---- code generation and hygiene ----------------------------------------

.PHONY: generate
generate: tools ## regenerate protobuf Go code, deepcopy functions and CRD YAML
	buf generate
	cd api && GOWORK=off controller-gen object crd paths=./karpenter/... paths=./aws/... output:crd:artifacts:config=crds

.PHONY: fmt
fmt: tools ## gofmt and buf format in place
	gofmt -w $$(git ls-files '*.go' | grep -v '^tools/')
	buf format -w

.PHONY: lint
lint: tools ## buf lint and go vet on every module
	buf lint
	for m in $(MODULES); do (cd $$m && go vet ./...); done

.PHONY: verify
verify: generate ## fail when generate, go mod tidy, gofmt or buf format would change anything
	for m in $(MODULES) tools/dev tools/jaeger tools/controlplane; do \
	  (cd $$m && GOWORK=off GOFLAGS=-mod=mod go mod tidy); done
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	buf format -d --exit-code
	buf lint
	for m in $(MODULES); do (cd $$m && go vet ./...); done
	git diff --exit-code -- . ':!go.work.sum' || { echo "make verify: the files above are out of date; run make generate / go mod tidy / make fmt and commit"; exit 1; }
	test -z "$$(git ls-files --others --exclude-standard -- api gen proto)" || { git ls-files --others --exclude-standard -- api gen proto; echo "make verify: untracked generated files"; exit 1; }

## ---- build -----------------------------------------------------------------

.PHONY: build
build: ## build bin/planner, bin/actuator, bin/watcher and the local-environment programs
	mkdir -p $(BIN)
	for s in $(SERVICES); do (cd services/$$s && go build -ldflags "$(LDFLAGS)" -o $(BIN)/$$s ./cmd/$$s); done
	cd test && go build -o $(BIN)/localenv ./cmd/localenv && go build -o $(BIN)/kubelet-sim ./cmd/kubelet-sim

## ---- images and deployment -------------------------------------------

IMAGE_PREFIX ?= ghcr.io/flotilla-dev/flotilla

.PHONY: images
images: ## build the container images of the three services (needs a Docker engine)
	for s in $(SERVICES); do docker build -f services/$$s/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE_PREFIX)/$$s:$(VERSION) .; done

.PHONY: deploy-check
deploy-check: controlplane ## kubectl kustomize every overlay of deploy/ and dry-run it server-side against a local apiserver
	cd test && go test -count=1 -run 'TestDeploy' -v ./deploy/

## ---- tests ---------------------------------------------------------------

.PHONY: test
test: unit e2e ## every test: unit tests of every module, then the end-to-end tests on a real local stack

.PHONY: unit
unit: controlplane ## unit and integration tests of every module (integration tests start their own control plane and moto)
	for m in $(MODULES); do echo "== $$m"; (cd $$m && go test -count=1 -timeout 20m $$(go list ./... | grep -v /test/e2e)); done

.PHONY: e2e
e2e: controlplane jaeger build ## end-to-end tests: real apiserver, scheduler, kwok, moto_server, Jaeger and the three services (two replicas each of actuator and watcher, mutual TLS)
	cd test && FLOTILLA_BIN=$(BIN) go test -count=1 -timeout $(E2E_TIMEOUT) ./e2e/...

CHAOS_SEED ?= 1
CHAOS_VICTIMS ?=
CHAOS_RUNS ?= 100

.PHONY: chaos
chaos: controlplane build ## fault injection: kill -9 each service at each step of scale-ups and consolidations ($(CHAOS_RUNS) runs, seed $(CHAOS_SEED)), apiserver/planner/moto faults; prints the invariant table (~45-60 min)
	cd test && FLOTILLA_BIN=$(BIN) go test -count=1 -timeout 150m -run '^TestChaos$$' -v ./chaos/ -args -chaos.runs=$(CHAOS_RUNS) -chaos.seed=$(CHAOS_SEED) -chaos.victims=$(CHAOS_VICTIMS)

SOAK_DURATION ?= 30m
SOAK_MAX_PODS ?= 2000

.PHONY: soak
soak: controlplane build ## soak: $(SOAK_DURATION) of random scale-ups and -downs of 20 Deployments (up to $(SOAK_MAX_PODS) pods) on the local stack; invariants every 10s, peak RSS per service
	cd test && FLOTILLA_SOAK=1 FLOTILLA_BIN=$(BIN) FLOTILLA_SOAK_DURATION=$(SOAK_DURATION) FLOTILLA_SOAK_MAX_PODS=$(SOAK_MAX_PODS) go test -count=1 -timeout 4h -run '^TestSoak$$' -v ./soak/

.PHONY: bench
bench: ## solver and watcher benchmarks (figures in bench.txt; compare runs with benchstat)
	cd services/planner && go test -run '^$$' -bench . -benchmem -count 6 ./... | tee $(ROOT)/bench.txt
	cd services/watcher && go test -run '^$$' -bench . -benchmem -count 6 ./internal/... | tee -a $(ROOT)/bench.txt

.PHONY: load-watcher
load-watcher: controlplane ## watcher load test: 5,000 nodes and 100,000 pods in a local apiserver; memory, snapshot, CPU, burst latency (20-60 min)
	cd services/watcher && FLOTILLA_LOAD=1 go test -count=1 -timeout 150m -run '^TestLoad$$' -v ./cmd/watcher/

## ---- local environment -------------------------------------------------

.PHONY: up
up: controlplane jaeger build ## start the local environment (control plane, moto, simulated kubelet, Jaeger, the three services)
	$(BIN)/localenv up

.PHONY: down
down: ## stop everything `make up` started
	$(BIN)/localenv down 2>/dev/null || true

.PHONY: demo
demo: up ## bring up the environment, apply an example NodePool, scale a Deployment up and down
	$(BIN)/localenv demo
