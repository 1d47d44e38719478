#!/usr/bin/env bash
# Offline tests of the Helm chart in charts/grpc-services (no cluster, no helm
# binary): Helm's engine comes as a Python wheel (helm-python-sdk), the
# Kubernetes schemas with kubernetes-validate. Needs python3 and PyPI; with Go
# on PATH (always in CI), one test also builds helm-docs from its module
# (tests/chart/helm-docs-tool) and checks the chart README's values table.
#
# Creates .venv at the repository root when missing, installs
# tests/chart/requirements.txt only when that file changed since the last
# install, then runs the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh
run_pytest chart "$@"
