# Everyday commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help build run test lint fmt

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build both services (debug)
	$(CARGO) build --workspace --bins

run: build ## Run service1 and service2 in the foreground (Ctrl-C stops both)
	scripts/run-local.sh

test: ## Run every test that needs only Rust and python3
	$(CARGO) test --workspace

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all
