#!/usr/bin/env bash
# Entry point of `make bench`: the harness is the loadtools package
# (loadtools/bench/; see README.md and loadtools/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m loadtools.bench
