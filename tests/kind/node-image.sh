#!/usr/bin/env bash
# Builds the kind node image from local parts, with no registry, into
# podman's store (ENGINE=docker: the Docker engine DOCKER_HOST names), and
# prints its name:
#
#   localhost/kind-node:<Kubernetes version>-<hash of every input>
#
# An image of that name already there is reused: the name changes with any
# input (the Kubernetes version, every binary, kind's files, the recipes
# here, the Debian base image), so a warm run builds nothing.
#
#  1. binaries: tests/k8s/tools/build.sh (Kubernetes, etcd, CoreDNS, pause)
#     and tests/kind/tools/build.sh (kind, crictl, kubeadm), kept by version
#  2. the base (node/Containerfile): kind's images/base recipe on Debian 12,
#     with Debian's systemd, containerd, runc and CNI plugins, our crictl,
#     kubeadm, kubelet and kubectl, and kind's own files from its module
#  3. the images kubeadm runs (`kubeadm config images list`: kube-apiserver,
#     kube-controller-manager, kube-scheduler, kube-proxy, etcd, CoreDNS,
#     pause) and the pause image kind's containerd config names, each built
#     here from our binaries under the name kubeadm expects
#  4. as `kind build node-image` does: a container of the base runs
#     containerd, `ctr images import` loads the images into it, and a
#     commit of that container is the node image
#
# Needs root, podman (and docker with ENGINE=docker), Go.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE_IMAGE=${BASE_IMAGE:-localhost/debian:bookworm-slim}
ENGINE=${ENGINE:-podman}
REPO=localhost/kind-node

log() { echo "kind-node-image: $*" >&2; }

# --- 1. binaries ------------------------------------------------------------------
eval "$(tests/k8s/tools/build.sh | sed 's/^/bin_/')"
eval "$(tests/kind/tools/build.sh | sed 's/^/bin_/')"
# shellcheck disable=SC2154 # set by the evals above
k8s=$bin_kubernetes
# shellcheck disable=SC2154
kubeadm=$bin_kubeadm/kubeadm
K8S_VERSION=$(cat tests/k8s/tools/K8S_VERSION)
kind_files=$(cd tests/kind/tools/kind && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files

case $ENGINE in
  podman | docker) ;;
  *)
    echo "kind-node-image: ENGINE must be podman or docker, not '$ENGINE'" >&2
    exit 2
    ;;
esac
if ! $ENGINE image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  scripts/build-local-base-images.sh debian
  if [[ $ENGINE == docker ]]; then
    log "podman save $BASE_IMAGE | docker load"
    podman save "$BASE_IMAGE" | docker load -q >/dev/null
  fi
fi

# --- the name: every input's hash -------------------------------------------------------
# shellcheck disable=SC2154
binaries=("$k8s"/{kubelet,kubectl,kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,etcd}
  "$kubeadm" "$bin_crictl/crictl" "$bin_coredns/coredns" "$bin_pause/pause")
inputs=$({
  echo "$K8S_VERSION"
  $ENGINE image inspect --format '{{.Id}}' "$BASE_IMAGE"
  sha256sum tests/kind/node-image.sh tests/kind/node/* tests/k8s/tools/pause/Containerfile "${binaries[@]}" | cut -d' ' -f1
  (cd "$kind_files" && find . -type f | LC_ALL=C sort | xargs sha256sum)
} | sha256sum | cut -c1-12)
IMAGE=$REPO:$K8S_VERSION-$inputs
if $ENGINE image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE: present"
  echo "$IMAGE"
  exit 0
fi
started=$SECONDS
log "building $IMAGE"

# With docker, its classic builder: the docker CLI here has no buildx
# plugin, which BuildKit needs, and these recipes use nothing BuildKit adds.
docker_build() {
  local out
  out=$(DOCKER_BUILDKIT=0 $ENGINE build -q "$@" 2>&1) || {
    tail -n 30 <<<"$out" >&2
    return 1
  }
}

work=$(mktemp -d "$PWD/target/kind-node-build.XXXXXX")
builder=
built=()
cleanup() {
  [[ -z $builder ]] || $ENGINE rm -f -v "$builder" >/dev/null 2>&1 || true
  ((${#built[@]} == 0)) || $ENGINE rmi "${built[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- 2. the base --------------------------------------------------------------------------
ctx=$work/base
mkdir -p "$ctx/bin"
cp -r "$kind_files" "$ctx/files"
chmod -R u+w,a+rX "$ctx/files"
cp tests/kind/node/Containerfile "$ctx/"
cp "$k8s/kubelet" "$k8s/kubectl" "$kubeadm" "$bin_crictl/crictl" "$ctx/bin/"
echo "$K8S_VERSION" >"$ctx/version"
docker_build -f "$ctx/Containerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$REPO-base:$inputs" "$ctx"
built+=("$REPO-base:$inputs")

# --- 3. the images kubeadm and the CRI will ask for -------------------------------------------
mapfile -t wanted < <("$kubeadm" config images list --kubernetes-version "$K8S_VERSION")
# The sandbox image kind's containerd config names (kind build node-image
# loads that one instead of kubeadm's pause).
sandbox=$(sed -n 's/^ *sandbox_image *= *"\(.*\)"/\1/p' "$ctx/files/etc/containerd/config.toml")
wanted+=("$sandbox")

build_image() { # TAG CONTAINERFILE CONTEXT BUILD_ARGS...
  local tag=$1 file=$2 dir=$3
  shift 3
  docker_build -f "$file" "$@" -t "$tag" "$dir"
  built+=("$tag")
}
comp=$work/components
mkdir -p "$comp"
cp "$k8s"/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,etcd} \
  "$bin_coredns/coredns" "$bin_pause/pause" "$comp/"
proxy_base=$REPO-kube-proxy-base:$inputs
build_image "$proxy_base" tests/kind/node/kube-proxy-base.Containerfile "$comp" --build-arg BASE_IMAGE="$BASE_IMAGE"
for image in "${wanted[@]}"; do
  name=${image##*/}
  case ${name%%:*} in
    kube-apiserver | kube-controller-manager | kube-scheduler | etcd)
      build_image "$image" tests/kind/node/component.Containerfile "$comp" --build-arg BIN="${name%%:*}" ;;
    kube-proxy)
      build_image "$image" tests/kind/node/component.Containerfile "$comp" --build-arg BIN=kube-proxy --build-arg BASE="$proxy_base" ;;
    coredns) build_image "$image" tests/kind/node/coredns.Containerfile "$comp" ;;
    pause) build_image "$image" tests/k8s/tools/pause/Containerfile "$comp" ;;
    *)
      log "kubeadm wants $image, which this script does not know how to build"
      exit 1
      ;;
  esac
done
save_args=(-o "$work/images.tar")
[[ $ENGINE == docker ]] || save_args+=(-q --format docker-archive --multi-image-archive)
$ENGINE save "${save_args[@]}" "${wanted[@]}"

# --- 4. preload, as kind build node-image does ------------------------------------------------
builder=kind-node-build-$$
$ENGINE run -d --name "$builder" --entrypoint sleep --security-opt seccomp=unconfined \
  "$REPO-base:$inputs" infinity >/dev/null
$ENGINE cp "$work/images.tar" "$builder:/images.tar"
# shellcheck disable=SC2016 # expanded by the node's bash
$ENGINE exec "$builder" bash -euc '
  nohup containerd >/tmp/containerd.log 2>&1 &
  for i in $(seq 50); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && break; sleep 0.2; done
  ctr --namespace=k8s.io images import --all-platforms --no-unpack --digests /images.tar >/dev/null
  ctr --namespace=k8s.io images list -q | grep -v "^sha256:"
  rm /images.tar
  pkill containerd
  for i in $(seq 50); do pgrep containerd >/dev/null || break; sleep 0.2; done
  rm -rf /tmp/* /var/log/* /run/containerd
' >"$work/imported"
for image in "${wanted[@]}"; do
  grep -qxF "$image" "$work/imported" || {
    log "$image is not in the node's containerd after the import: $(tr '\n' ' ' <"$work/imported")"
    exit 1
  }
done
commit_args=()
[[ $ENGINE == docker ]] || commit_args+=(-q)
$ENGINE commit "${commit_args[@]}" --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' --change 'CMD []' \
  "$builder" "$IMAGE" >/dev/null

# Older node images of ours (a new name means an input changed), and the
# base recipe's build stage (about 560 MB the node image does not share).
for old in $($ENGINE images "$REPO" --format '{{.Repository}}:{{.Tag}}'); do
  [[ $old == "$IMAGE" ]] || $ENGINE rmi "$old" >/dev/null 2>&1 || true
done
$ENGINE image prune -f --filter label=io.grpc-services.kind-node-build=stage >/dev/null 2>&1 || true
log "$IMAGE built in $((SECONDS - started)) s ($($ENGINE image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1 / 1e6}'))"
echo "$IMAGE"
