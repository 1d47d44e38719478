#!/usr/bin/env bash
# `make test-kind`: the chart and image end to end on a throw-away kind
# cluster. For developer machines and CI with docker (or podman), kind,
# kubectl and helm; it cannot run on our own CI machines (no registry to pull
# kind's node image from, no Docker engine).
#
# Its own logic is thin on purpose: the image is `make image`, the objects
# are the chart's (tested offline by scripts/test-chart.sh), `helm test` runs
# the image's `smoke` binary, and the HTTP checks are tests/kind/checks.sh,
# the same functions scripts/test-image.sh runs in CI against containers.
#
#  1. kind create cluster; make image; kind load
#  2. helm install --wait (3 service1, 2 service2 replicas); helm test
#  3. kubectl port-forward to service2: say-hello with X-Request-ID
#  4. 60 calls: every service1 pod logged some of their request ids
#  5. delete a service1 pod under load: no failed request
#  6. helm uninstall, kind delete cluster (KEEP_CLUSTER=1 keeps both)
#
# Env: KIND_CLUSTER (grpc-services-test), NAMESPACE (grpc-services-test),
#      RELEASE (grpc-services), KEEP_CLUSTER=1, LOCAL_PORT (18081).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/kind/checks.sh
source tests/kind/checks.sh

CLUSTER=${KIND_CLUSTER:-grpc-services-test}
NAMESPACE=${NAMESPACE:-grpc-services-test}
RELEASE=${RELEASE:-grpc-services}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
LOCAL_PORT=${LOCAL_PORT:-18081}
SERVICE1_PODS=app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=service1

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
pf_pid=""
teardown() {
  [[ -n $pf_pid ]] && kill "$pf_pid" 2>/dev/null
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

# --- 2. install and helm test ------------------------------------------------------
helm upgrade --install "$RELEASE" charts/grpc-services --namespace "$NAMESPACE" --create-namespace \
  --set image.repository="$repository",image.tag=latest,image.pullPolicy=Never \
  --wait --timeout 5m
kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service1" --timeout 2m
kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service2" --timeout 2m
helm test "$RELEASE" --namespace "$NAMESPACE" --logs --timeout 2m || die "helm test"

# --- 3. port-forward and say-hello --------------------------------------------------
kubectl -n "$NAMESPACE" port-forward "svc/$RELEASE-service2" "$LOCAL_PORT:80" >"$tmp/port-forward.log" 2>&1 &
pf_pid=$!
base=http://127.0.0.1:$LOCAL_PORT
for _ in $(seq 60); do
  curl -s -o /dev/null --max-time 2 "$base/livez" && break
  sleep 0.5
done
request_id=kind-$$-$RANDOM
check_say_hello "$base" "$request_id" kind || die "say-hello through the port-forward"

# --- 4. every replica served calls, with their request ids in its log --------------
call_many "$base" "$request_id-b" 60 || die "calls through the port-forward"
sleep 2
mapfile -t pods < <(kubectl -n "$NAMESPACE" get pods -l "$SERVICE1_PODS" -o name)
((${#pods[@]} == 3)) || die "expected 3 service1 pods, found ${#pods[@]}"
for pod in "${pods[@]}"; do
  served=$(kubectl -n "$NAMESPACE" logs "$pod" | count_served "$request_id-b")
  log "$pod served $served of the 60 calls"
  ((served > 0)) || die "$pod served none of the 60 calls"
done

# --- 5. delete a service1 pod under load -------------------------------------------
victim=${pods[0]}
kubectl -n "$NAMESPACE" delete "$victim" --wait=true --timeout 90s >/dev/null &
deleter=$!
out=$(calls_during "$deleter" "$base") || die "deleting $victim under load: $out"
wait "$deleter" || die "deleting $victim"
log "deleting $victim under load: $out"

# --- 6. uninstall (the cluster goes in the trap) -----------------------------------
if [[ $KEEP_CLUSTER != 1 ]]; then
  helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout 2m
fi
log "all kind checks passed"
