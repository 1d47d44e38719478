#!/usr/bin/env bash
# Lints what is outside the root workspace, so `make lint` never sees it:
# the tonic + axum pair (bench/baseline/) and the fuzz targets (fuzz/) with
# rustfmt and clippy, warnings as errors, each in its own target directory;
# the Go pair (bench/baseline-go/) with gofmt and `go vet`, and its generated
# code checked against protos/ (`generate.sh --check`, which needs protoc:
# Debian protobuf-compiler). CI runs it (.ci/run); it needs Rust and Go.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}

step() { echo "lint-bench-fuzz: $*" >&2; }

for manifest in bench/baseline/Cargo.toml fuzz/Cargo.toml; do
    dir=$(dirname "$manifest")
    step "rustfmt and clippy: $dir"
    "$CARGO" fmt --manifest-path "$manifest" -- --check
    # fuzz/: a plain build, without cargo-fuzz's instrumentation, which only
    # `make fuzz` adds; it type-checks the targets the same. No --locked:
    # fuzz/Cargo.lock lags behind wire/'s dependencies (as `make fuzz` and
    # `make bench` build them too).
    "$CARGO" clippy --manifest-path "$manifest" --target-dir "$dir/target" --all-targets \
        -- -D warnings
done

step "gofmt, go vet, generated code: bench/baseline-go"
cd bench/baseline-go
unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
    echo "gofmt would change: $unformatted" >&2
    exit 1
fi
go vet ./...
./generate.sh --check
step "ok"
