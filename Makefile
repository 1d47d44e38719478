# Everyday commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo
DEV_CERTS := $(addprefix certs/dev/,ca.crt service1.crt service1.key service2.crt service2.key)

.PHONY: help build run test test-chart test-rules test-prometheus lint fmt certs bench profile image test-image test-cluster test-kind fuzz stress

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-15s %s\n", $$1, $$2}'

build: ## Build both services (debug)
	$(CARGO) build --workspace --bins

run: build $(DEV_CERTS) ## Run both services with mTLS in the foreground (Ctrl-C stops both)
	scripts/run-local.sh

certs: ## Write the development CA and certificates in certs/dev, unless a usable set is there
	$(CARGO) run --quiet -p certgen -- --out certs/dev

# `make run` makes the development certificates only when they are missing.
$(DEV_CERTS):
	$(CARGO) run --quiet -p certgen -- --out certs/dev

test: ## Run every test that needs Rust, python3 with venv, and PyPI and crates.io to download from
	# Before the long build: python3 must be able to make the tests' venv.
	scripts/check-python.sh
	# The cluster tests start service1 binaries as real processes.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	scripts/test-chart.sh
	scripts/test-interop.sh
	scripts/test-quickstart.sh
	scripts/test-loadtools.sh

test-chart: ## Only the Helm chart tests (offline; makes .venv on first use)
	scripts/test-chart.sh

test-rules: ## The chart's alert rules under promtool (installs Debian's prometheus when missing, as root)
	scripts/test-rules.sh

test-prometheus: ## Both services scraped by a real Prometheus; stock gRPC dashboard and alert queries checked (root on Debian: installs prometheus)
	$(CARGO) build --workspace --bins
	scripts/test-prometheus.sh

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Load benchmark on a release build (writes results/latest; bench/README.md)
	CARGO=$(CARGO) bench/run.sh

profile: ## Where a request's CPU goes: perf (kernel vs user, top symbols) and strace (syscalls per request), ours and the baseline (root; bench/README.md)
	CARGO=$(CARGO) python3 -m loadtools.profile

stress: ## Overload, exhaustion, soak and gray-failure check: 2,000 connections, slowloris, idle h2, Watch floods, 10-min soak, frozen/slow replica (STRESS_PHASES=gray: only that; stress/README.md)
	CARGO=$(CARGO) python3 -m loadtools.stress

fuzz: ## Run each fuzz target for FUZZ_SECONDS (default 60) on stable; installs cargo-fuzz if missing
	scripts/fuzz.sh

# The image is built with podman when it is installed, else docker
# (`make image CONTAINER_ENGINE=docker` to choose).
CONTAINER_ENGINE ?= $(if $(shell command -v podman 2>/dev/null),podman,docker)

image: ## Build the container image grpc-services:latest (public base images)
	$(CONTAINER_ENGINE) build --build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" -t grpc-services:latest .

test-image: ## docker compose up --build on a private dockerd, then podman-compose; checks both (root; Debian: installs docker.io, podman)
	scripts/test-image.sh

test-cluster: ## The chart on a throw-away Kubernetes built from source, in a network namespace (root; tests/k8s/README.md)
	tests/k8s/run.sh

test-kind: ## End to end on a kind cluster with two workers: your kind, docker (or podman), kubectl, helm; KIND_LOCAL=1: all built here (root; tests/kind/README.md)
	tests/kind/run.sh
