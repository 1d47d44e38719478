#!/usr/bin/env bash
# Our services driven by the original's gRPC stack (grpcio), as the Python
# twins would drive them. Needs python3 and PyPI, and the debug binaries
# (`make test` builds them first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_venv tests/interop/requirements.txt

# No __pycache__ or .pytest_cache in the working tree.
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/interop "$@"
