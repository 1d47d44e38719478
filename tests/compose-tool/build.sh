#!/usr/bin/env bash
# Builds Docker Compose v2 from its Go module at the version pinned in this
# directory's go.mod, into target/compose-tool/VERSION/docker-compose (kept:
# a version change builds anew), and prints that path. Needs Go 1.24 or later
# and the Go module proxy. 6 min cold on our 2-core CI machine, most of it
# compiling; with the Go build cache warm, about 20 s.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)

command -v go >/dev/null || {
  echo "compose-tool: go not found (Go 1.24 or later; Debian 12's golang is too old)" >&2
  exit 1
}
version=$(go list -m -f '{{.Version}}' github.com/docker/compose/v2)
bin=$root/target/compose-tool/$version/docker-compose
if [[ ! -x $bin ]]; then
  echo "compose-tool: building Docker Compose $version from its Go module" >&2
  mkdir -p "$(dirname "$bin")"
  # The version flag is what compose's own Makefile sets.
  go build -trimpath -ldflags "-w -X github.com/docker/compose/v2/internal.Version=$version" \
    -o "$bin.tmp" github.com/docker/compose/v2/cmd
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
