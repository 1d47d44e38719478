#!/usr/bin/env bash
# Builds what the kind test needs beyond tests/k8s/tools/build.sh, each from
# its Go module into target/kind-bin/<program>-<version>/, skipping a program
# whose folder is complete already (kept by version, as tests/k8s does).
# Prints NAME=DIR lines.
#
#   kind:    ./kind, sigs.k8s.io/kind (pinned there, see README)
#   crictl:  ./crictl, sigs.k8s.io/cri-tools (the node image's CRI client)
#   kubeadm: ./kubeadm, k8s.io/kubernetes at tests/k8s/tools/K8S_VERSION
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-$(cd ../../.. && pwd)/target/kind-bin}
K8S_VERSION=$(cat ../../k8s/tools/K8S_VERSION)
export CGO_ENABLED=0

module_version() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }

# build NAME VERSION DIR -- GO_BUILD_ARGS...: into $OUT/NAME-VERSION unless there.
build() {
  local name=$1 version=$2 dir=$3 dest=$OUT/$1-$2
  shift 4
  if [[ ! -f $dest/.complete ]]; then
    echo "build: $name $version" >&2
    rm -rf "$dest"
    mkdir -p "$dest"
    (cd "$dir" && nice -n 10 go build -trimpath -o "$dest/" "$@")
    touch "$dest/.complete"
  fi
  echo "${name//-/_}=$dest"
}

kind_version=$(module_version kind sigs.k8s.io/kind)
build kind "$kind_version" kind -- -ldflags "-s -w" sigs.k8s.io/kind
crictl_version=$(module_version crictl sigs.k8s.io/cri-tools)
build crictl "$crictl_version" crictl -- \
  -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version" sigs.k8s.io/cri-tools/cmd/crictl

kubeadm_k8s=$(module_version kubeadm k8s.io/kubernetes)
if [[ $kubeadm_k8s != "$K8S_VERSION" ]]; then
  echo "tests/kind/tools/kubeadm builds k8s.io/kubernetes $kubeadm_k8s, tests/k8s/tools $K8S_VERSION: run tests/kind/tools/kubeadm/gen-go-mod.sh" >&2
  exit 1
fi
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
# The version ldflags of tests/k8s/tools/build.sh: kubeadm reads its own
# version to pick the control-plane images' tags.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
build kubeadm "$K8S_VERSION" kubeadm -- -tags selinux,notest -ldflags "$ldflags" k8s.io/kubernetes/cmd/kubeadm
