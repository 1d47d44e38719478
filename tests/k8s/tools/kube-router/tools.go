//go:build tools

// kube-router's network policy controller for the test cluster (check j),
// run with only the firewall (--run-firewall=true --run-router=false
// --run-service-proxy=false): NetworkPolicy enforced with iptables and
// ipset, which this kernel has (the nftables `queue` statement that
// sigs.k8s.io/kube-network-policies needs is not: CONFIG_NFT_QUEUE is unset).
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
