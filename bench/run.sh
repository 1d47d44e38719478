#!/usr/bin/env bash
# Entry point of `make bench`: everything else is in bench.py (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench.py
