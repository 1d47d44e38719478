#!/usr/bin/env bash
# Builds every program CI takes from a Go module, each by its own script and
# into the folder that script keeps by version (so the make targets that
# call those scripts later find them built): Docker Compose
# (tests/compose-tool), the test cluster's programs (tests/k8s/tools), its
# add-ons (tests/k8s/addons) and the kind test's tools (tests/kind/tools).
#
# .ci/run starts it in the background at its start, niced, and waits for it
# before the first step that needs one of them: on a fresh machine these
# builds are about 35 minutes of CPU on 2 cores (10 of them Traefik's, for
# check A5), and most of the steps
# before that (the Rust tests, the chart's tests, the benchmark's smoke runs)
# leave a core idle much of the time. Run alone, it is also a way to warm
# a machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
  local started=$SECONDS
  echo "ci-go-builds: $1" >&2
  "$1" >/dev/null
  echo "ci-go-builds: $1 done in $((SECONDS - started)) s" >&2
}

step tests/k8s/tools/build.sh
step tests/compose-tool/build.sh
step tests/k8s/addons/build.sh
step tests/kind/tools/build.sh
echo "ci-go-builds: all built in $SECONDS s" >&2
