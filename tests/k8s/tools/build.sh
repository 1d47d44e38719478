#!/usr/bin/env bash
# Builds every program the test cluster runs from its Go module, each into
# target/k8s-bin/<program>-<version>/, and skips a program whose folder is
# there already (go-build.sh). Prints the folder of each, as NAME=DIR lines.
#
#   kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler,
#               kubelet, kube-proxy, kubectl (k8s.io/kubernetes, this module)
#   etcd:       ./etcd, the etcd server module k8s.io/kubernetes pins
#   pause:      ./pause, the pod sandbox program (no deps)
#   coredns:    ./coredns, its own module
#   helm:       ./helm, its own module (Helm 4)
#   helm3:      ./helm3, its own module (Helm 3, for check u)
#   tcp-probe:  ./tcp-probe, the NetworkPolicy check's client (no deps)
#   kube-router: ./kube-router, its own module (NetworkPolicy enforcement)
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-$(cd ../../.. && pwd)/target/k8s-bin}
K8S_VERSION=$(cat K8S_VERSION)
export CGO_ENABLED=0

# shellcheck source=go-build.sh
. ./go-build.sh

ldflags=$(k8s_ldflags "$K8S_VERSION")
k8s_pkgs=()
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  k8s_pkgs+=("k8s.io/kubernetes/cmd/$c")
done
build kubernetes "$K8S_VERSION" . -- -tags selinux,notest -ldflags "$ldflags" "${k8s_pkgs[@]}" ./etcd
build pause 1 . -- -ldflags "-s -w" ./pause
build tcp-probe 1 . -- -ldflags "-s -w" ./tcp-probe
coredns_version=$(module_version coredns github.com/coredns/coredns)
build coredns "$coredns_version" coredns -- -ldflags "-s -w" github.com/coredns/coredns
helm_version=$(module_version helm helm.sh/helm/v4)
build helm "$helm_version" helm -- \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" helm.sh/helm/v4/cmd/helm
helm3_version=$(module_version helm3 helm.sh/helm/v3)
build helm3 "$helm3_version" helm3 -- \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm3_version" helm.sh/helm/v3/cmd/helm
kube_router_version=$(module_version kube-router github.com/cloudnativelabs/kube-router/v2)
build kube-router "$kube_router_version" kube-router -- -ldflags "-s -w \
  -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$kube_router_version \
  -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=1970-01-01T00:00:00Z" \
  github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
