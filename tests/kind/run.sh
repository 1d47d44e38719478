#!/usr/bin/env bash
# `make test-kind`: the chart and image end to end on a throw-away, two-node
# kind cluster (two workers in zones zone-a and zone-b, and kind's control
# plane), with the live checks shared
# with `make test-cluster` (tests/k8s/checks.sh). Two ways to run it:
#
#   make test-kind              a developer's machine: their kind, kubectl,
#                               helm and Docker (or podman), kind's default
#                               public node image (KIND_NODE_IMAGE to choose
#                               another); the project's image is built with
#                               the Dockerfile's public base images
#   KIND_LOCAL=1 make test-kind CI, or any Debian machine as root with no
#                               registry: kind built from its Go module, a
#                               node image built here (tests/kind/node-image.sh),
#                               kubectl and Helm from tests/k8s/tools, and
#                               podman as kind's engine (Docker cannot start
#                               kind's privileged nodes on our machines: see
#                               tests/kind/README.md)
#
# It changes nothing of the user's: its own kubeconfig file
# (target/kind/CLUSTER.kubeconfig; the user's ~/.kube/config and current
# context are never read or written), its own cluster name, refused if a
# cluster of that name exists that this checkout did not make, and at the end
# it deletes only the cluster it made and the image tag it built.
#
#  1. the project's image; kind (and, with KIND_LOCAL=1, the node image)
#  2. kind create cluster (two nodes), the image loaded into both nodes
#  3. the checks, one line each, then "N passed, M failed"
#  4. kind delete cluster (KEEP_CLUSTER=1 keeps it)
#
# Env: KIND_LOCAL=1, KIND_CLUSTER (grpc-services-kind), KIND_NODE_IMAGE,
#      KEEP_CLUSTER=1, LOCAL_PORT (18081), CHECKS (a subset, as in
#      tests/k8s/run.sh), SKIP_BUILD=1 (KIND_LOCAL=1: test podman's
#      localhost/grpc-services:test as it is).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

CLUSTER=${KIND_CLUSTER:-grpc-services-kind}
KIND_LOCAL=${KIND_LOCAL:-0}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
LOCAL_PORT=${LOCAL_PORT:-18081}
STATE_DIR=$ROOT/target/kind
KUBECONFIG_FILE=$STATE_DIR/$CLUSTER.kubeconfig
# The control-plane container's ID, written once kind made the cluster: how a
# later run knows that a cluster of this name is this checkout's.
OWNER_FILE=$STATE_DIR/$CLUSTER.owner
started=$SECONDS

log() { echo "test-kind: $*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

if ! [[ $CLUSTER =~ ^[a-z0-9][a-z0-9.-]*$ ]]; then
  echo "test-kind: KIND_CLUSTER must be a lower-case DNS name, not '$CLUSTER'" >&2
  exit 2
fi
[[ $KIND_LOCAL == 0 || $KIND_LOCAL == 1 ]] || {
  echo "test-kind: KIND_LOCAL must be 0 or 1, not '$KIND_LOCAL'" >&2
  exit 2
}
mkdir -p "$STATE_DIR"
tmp=$(mktemp -d)

# --- 1. tools, then images ----------------------------------------------------------
if [[ $KIND_LOCAL == 1 ]]; then
  [[ $EUID == 0 ]] || die "KIND_LOCAL=1 needs root (the make test-image build, podman as root for kind's privileged nodes)"
  IMAGE=localhost/grpc-services:test
  eval "$(tests/k8s/tools/build.sh | sed 's/^\([a-z0-9_]*\)=/bin_\1=/')"
  eval "$(tests/kind/tools/build.sh | sed 's/^\([a-z0-9_]*\)=/bin_\1=/')"
  # shellcheck disable=SC2154
  HELM3=${HELM3:-$bin_helm3/helm}
  # shellcheck disable=SC2154 # set by the evals above
  PATH=$bin_kind:$bin_kubernetes:$bin_helm:$PATH
  engine=podman
  export KIND_EXPERIMENTAL_PROVIDER=podman
else
  for tool in kind kubectl helm curl; do
    command -v "$tool" >/dev/null || die "$tool is required (or KIND_LOCAL=1 to build kind, kubectl and helm here, as root)"
  done
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null; then
    engine=podman
    export KIND_EXPERIMENTAL_PROVIDER=podman
  else
    die "docker (with a running engine) or podman is required"
  fi
fi
export KUBECONFIG=$KUBECONFIG_FILE

created=0
image_built=
network_made=0
teardown() {
  local status=$?
  if ((created)); then
    if [[ $KEEP_CLUSTER == 1 ]]; then
      log "keeping cluster $CLUSTER: KUBECONFIG=$KUBECONFIG_FILE kubectl get pods -A; KIND_CLUSTER=$CLUSTER make test-kind replaces it"
    else
      kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >/dev/null 2>&1 || true
      rm -f "$OWNER_FILE" "$KUBECONFIG_FILE"
      # kind's network, if this run made it and no other cluster uses it.
      if ((network_made)) && [[ -z $("$engine" ps -aq --filter network=kind 2>/dev/null) ]]; then
        "$engine" network rm kind >/dev/null 2>&1 || true
      fi
    fi
  fi
  [[ -z $image_built || $KEEP_CLUSTER == 1 ]] || "$engine" rmi "$image_built" >/dev/null 2>&1 || true
  if [[ -s $tmp/sysctls-before && $KEEP_CLUSTER != 1 ]]; then
    while read -r kv; do sysctl -q -w "$kv" 2>/dev/null || true; done <"$tmp/sysctls-before"
  fi
  rm -rf "$tmp"
  log "took $((SECONDS - started)) s"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# A cluster of our name, checked before anything is built: ours if its control plane is the container this
# checkout recorded (KEEP_CLUSTER=1, or an interrupted run), then replaced;
# anyone else's is left alone and the run refused.
if kind get clusters 2>/dev/null | grep -qxF "$CLUSTER"; then
  id=$("$engine" inspect --format '{{.Id}}' "$CLUSTER-control-plane" 2>/dev/null || true)
  if [[ -n $id && -f $OWNER_FILE && $(cat "$OWNER_FILE") == "$id" ]]; then
    log "deleting cluster $CLUSTER, left by an earlier run of this checkout"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >/dev/null
  else
    die "a kind cluster named $CLUSTER exists and was not made by this checkout's make test-kind: left alone. Run with KIND_CLUSTER=another-name, or delete it yourself (kind delete cluster --name $CLUSTER)"
  fi
fi
rm -f "$OWNER_FILE" "$KUBECONFIG_FILE"

# --- the images ------------------------------------------------------------------
if [[ $KIND_LOCAL == 1 ]]; then
  # The image as `make test-image` builds it (in its private dockerd, then
  # copied into podman's store); layer-cached, so quick after
  # `make test-image`. SKIP_BUILD=1 takes podman's as it is.
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    BUILD_ONLY=1 IMAGE=$IMAGE scripts/test-image.sh
  fi
  node_image_start=$SECONDS
  KIND_NODE_IMAGE=$(ENGINE=podman tests/kind/node-image.sh)
  log "node image $KIND_NODE_IMAGE ready in $((SECONDS - node_image_start)) s"
else
  # A tag of our own, so the user's grpc-services:latest stays as it was.
  image_built=grpc-services:kind-test
  IMAGE=$image_built
  [[ $engine == docker ]] || IMAGE=localhost/$image_built
  "$engine" build --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" -t "$image_built" .
fi

# --- 2. the cluster -------------------------------------------------------------------
our_node_image=0
[[ ${KIND_NODE_IMAGE:-} != localhost/kind-node:* ]] || our_node_image=1
# Two workers in two zones, as make test-cluster's two nodes are, and kind's
# control plane, tainted as kind leaves it: a worker can be frozen (check s)
# while the API server and the load generator on the control plane go on.
# Kubernetes 1.35 refuses cgroup v1 hosts unless told otherwise (our CI
# machines are cgroup v1; harmless on v2).
{
  cat <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  labels: {topology.kubernetes.io/zone: zone-a}
- role: worker
  labels: {topology.kubernetes.io/zone: zone-b}
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
EOF
  # Our node image has no kindnetd (no module to build it from): the
  # runner sets up the ptp CNI below instead.
  ((!our_node_image)) || printf 'networking:\n  disableDefaultCNI: true\n'
} >"$tmp/kind.yaml"
create_args=(--name "$CLUSTER" --config "$tmp/kind.yaml" --kubeconfig "$KUBECONFIG_FILE")
[[ -z ${KIND_NODE_IMAGE:-} ]] || create_args+=(--image "$KIND_NODE_IMAGE")
# Without our CNI the nodes cannot turn Ready yet: wait for that ourselves.
((our_node_image)) || create_args+=(--wait 180s)
"$engine" network inspect kind >/dev/null 2>&1 || network_made=1
# The kubelet in a kind node sets these host-wide (a privileged node sees
# the host's /proc/sys), as it would on a machine of its own: put them back
# afterwards. Only root can.
if [[ $EUID == 0 ]]; then
  for key in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
    echo "$key=$(sysctl -n "$key")"
  done >"$tmp/sysctls-before"
fi
cluster_start=$SECONDS
created=1
kind create cluster "${create_args[@]}"
"$engine" inspect --format '{{.Id}}' "$CLUSTER-control-plane" >"$OWNER_FILE"

mapfile -t nodes < <(kind get nodes --name "$CLUSTER" | sort)
if ((our_node_image)); then
  tests/kind/ptp-cni.sh "$engine" "${nodes[@]}"
  kubectl wait --for=condition=Ready node --all --timeout 180s >/dev/null
fi
if [[ $engine == docker ]]; then
  kind load docker-image "$IMAGE" --name "$CLUSTER"
else
  podman save -q --format docker-archive -o "$tmp/image.tar" "$IMAGE"
  kind load image-archive "$tmp/image.tar" --name "$CLUSTER"
  rm -f "$tmp/image.tar"
fi
log "cluster up (${nodes[*]}) and image loaded in $((SECONDS - cluster_start)) s"

# --- 3. the live checks, shared with `make test-cluster` ----------------------------------
# A port-forward listens where kubectl runs (here); ClusterIPs and pod IPs are
# reachable on the kind nodes, which have bash and curl. Scripts run on the
# control plane (calls reach the workers' pods, as a client's would);
# node-faults.sh runs on the node of the pod it is given.
local_sh() { bash "$@"; }
node_of_pod() { # UID: the node of the pod with that UID
  kubectl get pods -A -o jsonpath="{range .items[?(@.metadata.uid==\"$1\")]}{.spec.nodeName}{end}"
}
node_sh() {
  local script=$1 node=$CLUSTER-control-plane
  shift
  if [[ ${script##*/} == node-faults.sh ]]; then
    node=$(node_of_pod "$2")
    [[ -n $node ]] || {
      echo "no pod with UID $2" >&2
      return 1
    }
  fi
  "$engine" exec -i "$node" bash -s -- "$@" <"$script"
}
node_touch() { "$engine" exec "$CLUSTER-control-plane" touch "$1"; }
# A whole worker frozen: its container's cgroup (kubelet, containerd, pods).
# Not the control plane: the API server and the load generator run there.
node_freeze() { [[ $1 != "$CLUSTER-control-plane" ]] && "$engine" pause "$1" >/dev/null; }
node_thaw() { "$engine" unpause "$1" >/dev/null; }
# Check u compares Helm 3 with Helm 4: HELM3 names a Helm 3 binary (built
# here with KIND_LOCAL=1; on your machine, a `helm3` on PATH).
HELM3=${HELM3:-$(command -v helm3 || true)}
[[ -z $HELM3 ]] || helm3() { "$HELM3" "$@"; }
CHART=charts/grpc-services
NAMESPACE=grpc-services-test
RELEASE=grpc-services
IMAGE_REPOSITORY=${IMAGE%:*}
IMAGE_TAG=${IMAGE##*:}
PF_PORT=$LOCAL_PORT
CHECKS_TMP=$tmp
# shellcheck source=tests/k8s/checks.sh
source tests/k8s/checks.sh
# shellcheck source=tests/k8s/everything-on.sh
source tests/k8s/everything-on.sh
# shellcheck source=tests/k8s/gray-failure.sh
source tests/k8s/gray-failure.sh
# shellcheck source=tests/k8s/two-nodes.sh
source tests/k8s/two-nodes.sh

# j, k, w and l are make test-cluster's only: see tests/kind/README.md.
run_all_checks
run_two_node_checks
run_everything_on_check
run_gray_failure_checks
checks_summary
