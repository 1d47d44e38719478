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

# shellcheck source=../../k8s/tools/go-build.sh
. ../../k8s/tools/go-build.sh

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
ldflags=$(k8s_ldflags "$K8S_VERSION")
build kubeadm "$K8S_VERSION" kubeadm -- -tags selinux,notest -ldflags "$ldflags" k8s.io/kubernetes/cmd/kubeadm
