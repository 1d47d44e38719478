#!/usr/bin/env bash
# ptp-cni.sh ENGINE NODE...: the pod network of a kind cluster made from our
# node image, which has no kindnetd (kind's CNI has no Go module to build it
# from). It does what kindnetd does, once, from outside: on every node a CNI
# config for the ptp and host-local plugins (Debian's, in the image) over the
# node's pod CIDR, which the controller manager assigned, and a route to every
# other node's pod CIDR through that node's address. The same ptp setup as
# `make test-cluster`'s node (tests/k8s/cluster.sh). Needs KUBECONFIG.
set -euo pipefail
engine=${1:?engine}
shift
nodes=("$@")

declare -A cidr ip
for node in "${nodes[@]}"; do
  # The controller manager assigns the CIDR once the node registers.
  for ((i = 0; i < 60; i++)); do
    cidr[$node]=$(kubectl get node "$node" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)
    [[ -z ${cidr[$node]} ]] || break
    sleep 1
  done
  [[ -n ${cidr[$node]} ]] || {
    echo "ptp-cni: node $node has no pod CIDR after 60 s" >&2
    exit 1
  }
  ip[$node]=$(kubectl get node "$node" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
done

for node in "${nodes[@]}"; do
  "$engine" exec -i "$node" sh -c 'mkdir -p /etc/cni/net.d && cat >/etc/cni/net.d/10-ptp.conflist' <<JSON
{
  "cniVersion": "1.0.0",
  "name": "kind-ptp",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${cidr[$node]}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  for other in "${nodes[@]}"; do
    [[ $other == "$node" ]] || "$engine" exec "$node" ip route replace "${cidr[$other]}" via "${ip[$other]}"
  done
  echo "ptp-cni: $node pods ${cidr[$node]} (node ${ip[$node]})" >&2
done
