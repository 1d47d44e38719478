#!/usr/bin/env bash
# Builds the test cluster's Kubernetes components and etcd into BIN_DIR
# (default: target/k8s-bin/<version>), skipping the build when they are
# there already. Uses the normal Go build cache, so a rebuild after a change
# of flags is incremental.
set -euo pipefail
cd "$(dirname "$0")"
K8S_VERSION=$(cat K8S_VERSION)
BIN_DIR=${BIN_DIR:-$(cd ../../.. && pwd)/target/k8s-bin/${K8S_VERSION}}
cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
missing=0
for c in "${cmds[@]}" etcd; do [[ -x "$BIN_DIR/$c" ]] || missing=1; done
if [[ $missing == 0 ]]; then echo "$BIN_DIR"; exit 0; fi
mkdir -p "$BIN_DIR.tmp"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
# What hack/lib/version.sh sets, so `kubectl version` and Helm's kubeVersion
# check see the real release, not v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
export CGO_ENABLED=0
pkgs=()
for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$BIN_DIR.tmp/" "${pkgs[@]}" ./etcd
rm -rf "$BIN_DIR"; mv "$BIN_DIR.tmp" "$BIN_DIR"
echo "$BIN_DIR"
