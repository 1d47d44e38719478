#!/usr/bin/env bash
# Our services driven by the original's gRPC stack (grpcio), as the Python
# twins would drive them. Needs python3 and PyPI, and the debug binaries
# (`make test` builds them first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
run_pytest interop "$@"
