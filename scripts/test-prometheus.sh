#!/usr/bin/env bash
# Both services scraped by a real Prometheus, and the stock gRPC dashboard
# and alert queries, the chart's dashboard and its alert rules checked against
# what it stored (tests/prometheus/check.py). The rules are rendered with
# Helm's engine from the chart tests' .venv (made on first use).
# Needs the debug binaries (`make test-prometheus` builds them), python3 and
# `prometheus` on PATH; run as root on Debian, it installs Debian's
# prometheus package when missing (no service is started: there is no init
# system in CI, and the test runs its own).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    else
        echo "test-prometheus: needs prometheus on PATH (Debian: apt-get install prometheus)" >&2
        exit 2
    fi
fi

source scripts/venv.sh
ensure_venv tests/chart/requirements.txt
# No __pycache__ in the working tree; loadtools starts and stops services.
export PYTHONDONTWRITEBYTECODE=1
PYTHONPATH=. exec .venv/bin/python tests/prometheus/check.py "$@"
