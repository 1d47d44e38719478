#!/usr/bin/env bash
# `make test-cluster`: the chart and image on a real, throw-away Kubernetes
# cluster (two nodes; NODES=1 for one) of upstream components built from
# source (see tests/k8s/cluster.sh), with no registry and no traffic outside
# loopback and the cluster's own network namespaces.
#
#  1. preflight: root, kernel features, capabilities, packages (names what
#     is missing instead of hanging)
#  2. builds Kubernetes, etcd, CoreDNS, Helm and the pause program from their
#     Go modules (tests/k8s/tools/build.sh; kept by version under target/)
#  3. the pause image (FROM scratch) and the project's image (the
#     `make test-image` build, layer-cached) in podman, then imported into
#     the node's containerd
#  4. starts the cluster, runs the live checks of tests/k8s/checks.sh, one
#     line each, and ends with "N passed, M failed"
#  5. tears everything down, also on failure or Ctrl-C (KEEP_CLUSTER=1 keeps it
#     up: `tests/k8s/cluster.sh exec ...` reaches it, `cluster.sh down` ends it)
#
# Env: IMAGE (localhost/grpc-services:test), SKIP_BUILD=1 (test IMAGE as it
# is), KEEP_CLUSTER=1, NODES (2; 1 skips the checks that need two nodes),
# CHECKS (a space-separated subset of the check names in tests/k8s/checks.sh's
# run_all_checks, tests/k8s/two-nodes.sh's run_two_node_checks, monitoring,
# network_policy, network_policy_egress and everything_on, to run fewer).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export STATE=${STATE:-/var/lib/grpc-services-k8s}
IMAGE=${IMAGE:-localhost/grpc-services:test}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
export NODES=${NODES:-2}
started=$SECONDS

log() { echo "test-cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}

tests/k8s/preflight.sh || die "preflight failed: see above"

# --- 2. binaries --------------------------------------------------------------------
build_start=$SECONDS
# A failed build stops the run here: its output is taken whole before eval.
built=$(tests/k8s/tools/build.sh) || die "tests/k8s/tools/build.sh failed: see above"
eval "$(sed 's/^\([a-z0-9_]*\)=/bin_\1=/' <<<"$built")"
# shellcheck disable=SC2154 # set by the eval above
export BIN_DIR=$bin_kubernetes TOOLS_BIN=$bin_coredns
# shellcheck disable=SC2154
HELM3=$bin_helm3/helm
log "binaries ready in $((SECONDS - build_start)) s: $BIN_DIR"
# The add-on checks' programs (tests/k8s/addons/build.sh): ADDONS_BIN_<NAME>.
built=$(tests/k8s/addons/build.sh) || die "tests/k8s/addons/build.sh failed: see above"
eval "$(sed 's/^\([a-z_]*\)=/ADDONS_BIN_\U\1=/' <<<"$built")"

# --- 3. images ------------------------------------------------------------------------
# Built as `make test-image` builds it, every time: podman's layer cache makes
# that quick when nothing changed (right after `make test-image`, in CI), and
# a stale image can never be what gets tested. SKIP_BUILD=1 takes IMAGE as is.
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  BUILD_ONLY=1 IMAGE=$IMAGE scripts/test-image.sh
fi
pause_ctx=$(mktemp -d)
# shellcheck disable=SC2154
cp "$bin_pause/pause" tests/k8s/tools/pause/Containerfile "$pause_ctx/"
podman build -q -t localhost/pause:test "$pause_ctx" >/dev/null
rm -rf "$pause_ctx"

# --- 4. cluster and checks ------------------------------------------------------------
CHECKS_TMP=$(mktemp -d)
teardown() {
  local status=$?
  if [[ $KEEP_CLUSTER == 1 ]]; then
    log "keeping the cluster (tests/k8s/cluster.sh down ends it; logs in $STATE/logs)"
  else
    tests/k8s/cluster.sh down || true
  fi
  rm -rf "$CHECKS_TMP"
  log "took $((SECONDS - started)) s"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

cluster_start=$SECONDS
tests/k8s/cluster.sh up
tests/k8s/cluster.sh import "$IMAGE"
log "cluster up and images imported in $((SECONDS - cluster_start)) s"

export KUBECTL=$BIN_DIR/kubectl KUBECONFIG=$STATE/admin.kubeconfig
# shellcheck disable=SC2154
HELM=$bin_helm/helm
kubectl() { tests/k8s/cluster.sh exec "$KUBECTL" "$@"; }
helm() { tests/k8s/cluster.sh exec "$HELM" "$@"; }
helm3() { tests/k8s/cluster.sh exec "$HELM3" "$@"; }
node_freeze() { tests/k8s/cluster.sh freeze "$1"; }
node_thaw() { tests/k8s/cluster.sh thaw "$1"; }
# kubectl, port-forwards, curl and load all run inside the cluster's namespace.
local_sh() { tests/k8s/cluster.sh exec bash "$@"; }
node_sh() { tests/k8s/cluster.sh exec bash "$@"; }
node_touch() { touch "$1"; }
CHART=$ROOT/charts/grpc-services
NAMESPACE=grpc-services-test
RELEASE=grpc-services
IMAGE_REPOSITORY=${IMAGE%:*}
IMAGE_TAG=${IMAGE##*:}
PF_PORT=18081
# shellcheck source=tests/k8s/checks.sh
source tests/k8s/checks.sh
# shellcheck source=tests/k8s/network-policy.sh
source tests/k8s/network-policy.sh
# shellcheck source=tests/k8s/monitoring.sh
source tests/k8s/monitoring.sh
# shellcheck source=tests/k8s/everything-on.sh
source tests/k8s/everything-on.sh
# shellcheck source=tests/k8s/gray-failure.sh
source tests/k8s/gray-failure.sh
# shellcheck source=tests/k8s/two-nodes.sh
source tests/k8s/two-nodes.sh

run_all_checks
run_two_node_checks
run_everything_on_check
run_gray_failure_checks
if [[ -z ${CHECKS:-} || " $CHECKS " == *" monitoring "* ]]; then
  run_check "l. monitoring on: a Prometheus configured from the PodMonitor scrapes every pod; every dashboard query gives a number, every alert evaluates" check_monitoring
fi
# Last: kube-router adds a firewall chain for every pod, which the checks
# above should not depend on.
wants() { [[ -z ${CHECKS:-} || " $CHECKS " == *" $1 "* ]]; }
if wants network_policy || wants network_policy_egress; then
  if network_policy_start; then
    if wants network_policy; then
      run_check "j. networkPolicy.enabled: only service2 reaches service1's gRPC port (enforced by kube-router)" check_network_policy
      run_check "k. networkPolicy.service1GrpcFrom admits an extra client; egress on: service2 still reaches DNS and service1" check_network_policy_knobs
    fi
    if wants network_policy_egress; then
      run_check "w. NetworkPolicy egress, negative control: with egress on a service2 pod cannot open service1's admin port, which it opens with egress off" check_network_policy_egress
    fi
  else
    run_check "j. kube-router (NetworkPolicy enforcement) starts" false
  fi
fi
# --- add-ons (tests/k8s/addons/checks.sh) ---------------------------------------------
# shellcheck source=tests/k8s/addons/checks.sh
source tests/k8s/addons/checks.sh
run_addon_checks
checks_summary
