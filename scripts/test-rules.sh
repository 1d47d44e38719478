#!/usr/bin/env bash
# The chart's Prometheus alert rules under `promtool test rules`, on the
# synthetic series in tests/chart/rules/. promtool comes from Debian's
# `prometheus` package; when it is missing and we are root (CI), this
# installs it. The tests are the chart suite's test_alert_rules.py, made
# required here (the plain chart suite skips them without promtool).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "test-rules: installing promtool (apt-get install prometheus)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null; }
    else
        echo "test-rules: promtool is missing; install Debian's prometheus package (as root)" >&2
        exit 1
    fi
fi

export GRPC_SERVICES_REQUIRE_PROMTOOL=1
source scripts/venv.sh
run_pytest chart -k test_alert_rules "$@"
