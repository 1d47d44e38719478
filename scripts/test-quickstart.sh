#!/usr/bin/env bash
# The quick start as a newcomer meets it: `make run`'s port check and
# moved ports, and `make test`'s python3-venv check. Needs python3 and PyPI,
# and the debug binaries (`make test` builds them first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
run_pytest quickstart "$@"
