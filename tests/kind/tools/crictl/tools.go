//go:build tools

// crictl, the node image's CRI client, imported so `go mod tidy` keeps its
// dependencies (a module of its own, so they do not mix with kind's).
//
// Pinned at v1.34.0 (go.mod): cri-tools follows Kubernetes minors, and v1.35
// is not on the Go module proxy; the CRI v1 API it speaks is stable, so the
// 1.34 client works with the node's containerd and kubelet 1.35.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
