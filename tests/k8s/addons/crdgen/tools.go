//go:build tools

// prometheus-operator's API types, the source its own CRDs are generated
// from (controller-gen, this module's tool, reads them in the module cache).
package tools

import _ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
