//go:build tools

// kind itself, imported so `go mod tidy` keeps its dependencies at the
// versions kind's own go.mod pins (a module of its own: nothing else mixes
// in).
//
// Pinned at v0.33.0 (go.mod): the newest release the Go module proxy serves;
// it supports the node's Kubernetes 1.35 (kubeadm v1beta3 config below
// 1.36), still runs on cgroup v1 hosts like our CI machines (a deprecation
// warning only), and its images/base files (entrypoint, systemd units,
// containerd config), which tests/kind/node-image.sh takes from this module,
// match the kind binary that drives them.
package tools

import _ "sigs.k8s.io/kind"
