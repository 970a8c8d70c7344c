# nomad-driver-containerd: see README.md. Targets that run containers need root.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell hack/version.sh)
LDFLAGS := -X github.com/nomad-containerd/nomad-driver-containerd/driver.Version=$(VERSION)
BIN     := bin/nomad-driver-containerd
# the test bed's binaries come first on PATH; Debian's runc stays in /usr/sbin
export PATH := $(CURDIR)/.deps/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help deps build unit dist-test fuzz integration e2e test soak check licenses demo demo-stop dist bench

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install the pinned test bed into .deps/ (apt + go install; idempotent)
	bash hack/deps.sh all

build: ## build the plugin into bin/
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

check: ## gofmt and go vet (all build tags)
	@files=$$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.*'); \
	out=$$(gofmt -l $$files </dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) vet -tags e2e ./...
	$(GO) vet -tags bench ./...

licenses: ## licence gate: every module compiled into the plugin, its tests and the test bed's tools is open source (exceptions: hack/licenses.allow)
	$(GO) run ./hack/licenses -tags integration -tags e2e -tags bench
	$(GO) run ./hack/licenses -tools hack/versions.env

unit: ## unit tests: no root, no daemons (-short: the release build test runs in dist-test)
	$(GO) test -count=1 -short ./...

dist-test: ## release test: builds the release archives twice and checks they are reproducible
	$(GO) test -count=1 -timeout 30m -run '^TestDist$$' -v .

FUZZTIME ?= 3s
fuzz: ## a short run (FUZZTIME each) of every fuzz target: task config, volumes, devices, port maps, image references
	@set -e; files=$$(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go' -not -path './.*'); \
	for f in $$(grep -l '^func Fuzz' $$files); do \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz ./$$(dirname $$f) $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
	  done; \
	done

integration: deps ## driver, executor, image and test bed against a hermetic containerd (root)
	$(GO) test -count=1 -p 1 -timeout 30m -tags integration ./...

e2e: deps build ## example jobs on a real Nomad agent with the plugin (root)
	$(GO) test -count=1 -p 1 -timeout 30m -tags e2e ./e2e/...

test: check licenses unit dist-test fuzz integration e2e ## everything CI runs

soak: deps ## churn: SOAK_CYCLES (200) bridge tasks with port maps started and stopped, then leak, goroutine and memory checks (root)
	set -o pipefail; SOAK_CYCLES=$${SOAK_CYCLES:-200} $(GO) test -count=1 -p 1 -timeout 60m -tags integration -run '^TestChurn$$' -v ./driver/ \
		| grep -v -e '\[DEBUG\]' -e '\[TRACE\]'

bench: deps build ## driver vs raw containerd, go-cni and ctr, and vs raw_exec and docker under one Nomad agent, in one run: table, .work/bench/results.json and results.svg (root)
	bash hack/deps.sh bench
	$(GO) test -count=1 -p 1 -timeout 60m -tags bench -run '^TestBench$$' -v ./e2e/bench/ 2>&1 | \
		grep -v -e '^=== ' -e ' \[DEBUG\] ' ; exit $${PIPESTATUS[0]}

dist: ## versioned, reproducible release archives for linux/amd64 and arm64 with SHA256SUMS, in dist/
	VERSION=$(VERSION) hack/dist.sh

demo: ## install what the demo needs, build in parallel, then run example-jobs/hello and service on containerd + Nomad (root)
	bash hack/demo.sh

demo-stop: ## stop what `make demo` left running
	bash hack/demo-stop.sh
