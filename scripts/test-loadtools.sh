#!/usr/bin/env bash
# Unit tests of the load tools' logic (loadtools/, behind `make bench`):
# targets, rounds, plan, settings, smoke verdict, results.md, on made-up
# runs (no services, no oha). Needs python3 and PyPI (pytest, in .venv).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
run_pytest loadtools "$@"
