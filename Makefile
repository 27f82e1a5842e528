# Gantry's tasks. Run `make help` for the list.

SHELL        := /usr/bin/env bash
.SHELLFLAGS  := -euo pipefail -c
GO           ?= go
BIN          := bin/gantry
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS      := -X github.com/gantry-run/gantry/internal/version.Version=$(VERSION)
GOLANGCI     := $(shell $(GO) env GOPATH)/bin/golangci-lint
GOLANGCI_VER := v2.15.0

# Static binaries: the serverless node runs the queue-proxy (the binary gantry carries, or
# gantry itself) inside an empty container root, where no C library exists. Tests build the same way, so one build
# cache serves both.
export CGO_ENABLED := 0
# Go as the machine image installs it, for a root shell whose PATH lacks it.
export PATH := $(PATH):/usr/local/go/bin

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install what building and testing need (apt packages, Go modules); idempotent.
	hack/install-deps.sh

.PHONY: bench-deps
bench-deps: ## Install what building needs, and what only the benchmarks use (wrk).
	hack/install-deps.sh --bench

.PHONY: test-deps
test-deps: ## Install what building and testing need, and what only the tests use (chromium).
	hack/install-deps.sh --test

.PHONY: build
build: ## Build bin/gantry, with the queue-proxy's own binary inside it (hack/build.sh).
	GO="$(GO)" LDFLAGS="$(LDFLAGS)" hack/build.sh $(BIN)

.PHONY: up
up: deps build ## Build and start gantry server in the background, then show it working.
	hack/up.sh

.PHONY: down
down: ## Stop the gantry server that `make up` started.
	hack/down.sh

.PHONY: fmt-check
fmt-check: ## Fail if gofmt would change a file.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet on every package.
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI) ## Run golangci-lint with .golangci.yml.
	$(GOLANGCI) run ./...

$(GOLANGCI):
	GOBIN=$(dir $(GOLANGCI)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VER)

.PHONY: manifests
manifests: ## Regenerate deepcopy code and the CRDs in config/crd (controller-gen).
	hack/update-codegen.sh

.PHONY: verify-codegen
verify-codegen: manifests ## Fail if the committed generated code or CRDs differ from the generator's.
	@git diff --exit-code -- pkg/apis config/crd || { echo "generated files are stale: run make manifests and commit"; exit 1; }

.PHONY: unit
unit: ## Unit tests: everything but test/ and bench/ (no control plane, fast).
	$(GO) test $$($(GO) list ./... | grep -v -e /test/ -e /bench/)

# How long `make fuzz` runs each fuzz target.
FUZZTIME     ?= 10s

.PHONY: fuzz
fuzz: ## Run every fuzz target (func FuzzX in a _test.go file) for FUZZTIME each (default 10s).
	GO=$(GO) FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: integration
integration: build ## Integration tests against the in-process Gantry (the node runs queue-proxies from bin/gantry).
	GANTRY_BIN=$(CURDIR)/$(BIN) $(GO) test -timeout 20m ./test/integration/...

.PHONY: e2e
e2e: build ## End-to-end tests that run bin/gantry as a user would.
	GANTRY_BIN=$(CURDIR)/$(BIN) $(GO) test -timeout 25m ./test/e2e/...

.PHONY: test
test: test-deps fmt-check vet lint verify-codegen unit fuzz integration e2e ## The whole suite, as CI runs it (installs what it needs).

.PHONY: bench
bench: bench-deps build ## Run the benchmarks under bench/ and print their tables (about 25 minutes).
	$(GO) run ./bench/startup -gantry $(CURDIR)/$(BIN)
	$(GO) run ./bench/throughput -gantry $(CURDIR)/$(BIN)
	$(GO) test ./bench/serving ./bench/pods -run '^$$' -bench . -benchtime 1x -timeout 40m

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin
