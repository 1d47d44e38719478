#!/usr/bin/env bash
# The chart README's values table, generated from values.yaml's `# --`
# comments by helm-docs (charts/grpc-services/README.md.gotmpl is the
# source; README.md is its output).
#
#   tests/chart/helm-docs-tool/helm-docs.sh          rewrite README.md
#   tests/chart/helm-docs-tool/helm-docs.sh --check  exit 1 (and show the
#                                                    diff) if README.md is
#                                                    not what it would write
#
# helm-docs is built from its Go module, pinned in this directory's go.mod
# and go.sum, into target/helm-docs/ (once per version; needs Go and the Go
# module proxy the first time, about 2 minutes on 2 cores).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
chart=$root/charts/grpc-services
version=$(cd "$here" && go list -m -f '{{.Version}}' github.com/norwoodj/helm-docs)
bin=$root/target/helm-docs/helm-docs-$version
if [[ ! -x $bin ]]; then
  mkdir -p "$(dirname "$bin")"
  (cd "$here" && go build -o "$bin.tmp" github.com/norwoodj/helm-docs/cmd/helm-docs)
  mv "$bin.tmp" "$bin"
fi
generate() {
  (cd "$chart" && "$bin" --chart-search-root . --sort-values-order file \
    --template-files README.md.gotmpl --log-level warning "$@")
}
if [[ ${1:-} == --check ]]; then
  if ! diff -u "$chart/README.md" <(generate --dry-run) >&2; then
    echo "charts/grpc-services/README.md is not what helm-docs makes from values.yaml and README.md.gotmpl:" \
      "run tests/chart/helm-docs-tool/helm-docs.sh" >&2
    exit 1
  fi
else
  generate
fi
