#!/usr/bin/env bash
# Offline tests of the Helm chart in charts/grpc-services (no cluster, no helm
# binary): Helm's engine comes as a Python wheel (helm-python-sdk), the
# Kubernetes schemas with kubernetes-validate. Needs python3 and PyPI only.
#
# Creates .venv at the repository root when missing, installs
# tests/chart/requirements.txt only when that file changed since the last
# install, then runs the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=tests/chart/requirements.txt
stamp="$venv/.chart-requirements.sha256"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi

wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary=:all: -r "$requirements"
    echo "$wanted" >"$stamp"
fi

# No __pycache__ or .pytest_cache in the working tree.
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/chart "$@"
