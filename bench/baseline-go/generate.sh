#!/usr/bin/env bash
# Writes the Go code for protos/ (the wire contract ours speaks) into
# internal/pb/, with protoc and the two plugins that grpc-go's quick start
# names, at the versions go.mod pins as tools. The generated files are
# committed, as grpc-go's own examples do, so building needs Go alone;
# `generate.sh --check` (CI) regenerates into a scratch directory and fails
# when the committed files differ, i.e. when protos/ changed without them.
# Needs protoc (Debian: protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")"
protos=../../protos
out=.
if [[ ${1:-} == --check ]]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
# The .proto files carry no go_package option (they are shared with the
# Rust and Python implementations), so the import paths are given here.
maps="Mapp/grpc/service1.proto=baselinego/internal/pb/service1pb,Mbson/object_id.proto=baselinego/internal/pb/bsonpb"
protoc -I "$protos/service1" -I "$protos/bson" \
    --plugin=protoc-gen-go="$(go tool -n protoc-gen-go)" \
    --plugin=protoc-gen-go-grpc="$(go tool -n protoc-gen-go-grpc)" \
    --go_out="$out" --go_opt=module=baselinego,"$maps" \
    --go-grpc_out="$out" --go-grpc_opt=module=baselinego,"$maps" \
    app/grpc/service1.proto bson/object_id.proto
if [[ $out != . ]]; then
    diff -r "$out/internal/pb" internal/pb
fi
