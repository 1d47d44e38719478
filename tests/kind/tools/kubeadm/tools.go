//go:build tools

// kubeadm, which kind runs on its nodes; from the same k8s.io/kubernetes
// release as tests/k8s/tools.
package tools

import _ "k8s.io/kubernetes/cmd/kubeadm"
