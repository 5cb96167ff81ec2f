# hookmesh developer tasks. See scripts/ for what each one does.

# Go may be installed in /usr/local/go without being on PATH.
export PATH := $(PATH):/usr/local/go/bin

SHELL := /bin/bash

.PHONY: run test faults scale generate check-generated lint bench ferretdb ui image

# The whole of hookmesh in one process, on a local stack started as needed.
# exec: the script is make's own child, which it watches; SIGINT, SIGTERM or
# SIGHUP to make (or Ctrl-C) stops everything the script started.
run:
	exec bash scripts/run.sh

# go vet and go test against real RabbitMQ and FerretDB (started as needed).
# Extra go test flags: make test TESTFLAGS="-run TestX -v".
test:
	bash scripts/test.sh $(TESTFLAGS)

# The fault-injection suite: real processes on a RabbitMQ node and a
# FerretDB of its own, killed and stopped under load (faults/).
# Extra go test flags: make faults TESTFLAGS="-run TestFaults/baseline".
faults:
	bash scripts/faults.sh $(TESTFLAGS)

# The scale suite: two of each of ingest, router and deliverer on a
# RabbitMQ cluster of three nodes of its own, under load while a node is
# stopped and a replica of each is killed (faults/scale_test.go).
scale:
	bash scripts/faults.sh --scale $(TESTFLAGS)

# Regenerate gen/ from proto/ (and ui/src/gen when ui/node_modules exists).
generate:
	bash scripts/generate.sh

# Rebuild the dashboard (ui/dist, committed and embedded) with the machine's
# Node and npm: npm ci, ui/src/gen from proto/, type-check, Vite build.
ui:
	bash scripts/ui.sh

# Fail when gen/ is not what proto/ generates, or ui/dist is stale.
check-generated:
	bash scripts/generate.sh --check

# gofmt (gen/ excluded), go vet, and golangci-lint with .golangci.yml (the
# pinned version is installed into .hookmesh/bin on first use).
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := .hookmesh/bin/golangci-lint-$(GOLANGCI_LINT_VERSION)
lint: $(GOLANGCI_LINT)
	@files="$$(find . -name '*.go' -not -path './gen/*' -not -path './.*' -print0 | xargs -0 -r gofmt -l)"; \
	if [ -n "$$files" ]; then echo "gofmt -l reports unformatted files:"; echo "$$files"; exit 1; fi
	go vet ./...
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	mkdir -p .hookmesh/bin
	GOBIN="$(CURDIR)/.hookmesh/bin" go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv .hookmesh/bin/golangci-lint $(GOLANGCI_LINT)

bench:
	bash scripts/bench.sh $(BENCH_ARGS)

# Build deploy/ferretdb into .hookmesh/bin/ferretdb (when its sources changed).
ferretdb:
	bash -c 'source scripts/lib.sh && build_ferretdb'

# The container image (deploy/Dockerfile): a static binary on distroless,
# tagged hookmesh:latest, or IMAGE=registry.example.com/hookmesh:1.2.
IMAGE ?= hookmesh:latest
image:
	docker build -f deploy/Dockerfile -t $(IMAGE) .
