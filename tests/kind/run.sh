#!/usr/bin/env bash
# `make test-kind`: the chart and image end to end on a throw-away kind
# cluster. For developer machines and CI with docker (or podman), kind,
# kubectl and helm; it cannot run on our own CI machines (no registry to pull
# kind's node image from, no Docker engine).
#
# Its own logic is thin on purpose: the image is `make image`, and the checks
# are tests/k8s/checks.sh, the same ones `make test-cluster` runs in CI on a
# Kubernetes built from source (a to h: install, helm test, port-forward,
# balancing, disruption under load, upgrade, scaling, existing Secrets).
#
#  1. kind create cluster; make image; kind load
#  2. the checks, one line each, then "N passed, M failed"
#  3. kind delete cluster (KEEP_CLUSTER=1 keeps it)
#
# Env: KIND_CLUSTER (grpc-services-test), NAMESPACE (grpc-services-test),
#      RELEASE (grpc-services), KEEP_CLUSTER=1, LOCAL_PORT (18081).
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${KIND_CLUSTER:-grpc-services-test}
NAMESPACE=${NAMESPACE:-grpc-services-test}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
LOCAL_PORT=${LOCAL_PORT:-18081}

log() { echo "test-kind: $*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

for tool in kind kubectl helm curl make; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null; then
  engine=podman
  export KIND_EXPERIMENTAL_PROVIDER=podman
else
  die "docker (with a running engine) or podman is required"
fi

tmp=$(mktemp -d)
teardown() {
  if [[ $KEEP_CLUSTER == 1 ]]; then
    log "keeping cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap teardown EXIT

# --- 1. cluster and image --------------------------------------------------------
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 180s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null
make image CONTAINER_ENGINE="$engine"
if [[ $engine == docker ]]; then
  repository=grpc-services
  kind load docker-image grpc-services:latest --name "$CLUSTER"
else
  # podman names the image localhost/grpc-services; load it under that name.
  repository=localhost/grpc-services
  podman save --format docker-archive -o "$tmp/image.tar" localhost/grpc-services:latest
  kind load image-archive "$tmp/image.tar" --name "$CLUSTER"
fi

# --- 2. the live checks, shared with `make test-cluster` ----------------------------
node=$CLUSTER-control-plane
kubectl config use-context "kind-$CLUSTER" >/dev/null
# A port-forward listens where kubectl runs; ClusterIPs and pod IPs are
# reachable on the kind node, which has bash and curl.
local_sh() { bash "$@"; }
node_sh() {
  local script=$1
  shift
  "$engine" exec -i "$node" bash -s -- "$@" <"$script"
}
node_touch() { "$engine" exec "$node" touch "$1"; }
CHART=charts/grpc-services
RELEASE=${RELEASE:-grpc-services}
IMAGE_REPOSITORY=$repository
IMAGE_TAG=latest
PF_PORT=$LOCAL_PORT
CHECKS_TMP=$tmp
# shellcheck source=tests/k8s/checks.sh
source tests/k8s/checks.sh
# shellcheck source=tests/k8s/gray-failure.sh
source tests/k8s/gray-failure.sh
run_all_checks
run_gray_failure_checks
checks_summary
