#!/usr/bin/env bash
# port-forward.sh NAMESPACE TARGET LOCAL_PORT REMOTE_PORT REQUEST_ID: runs
# `kubectl port-forward`, waits for its listener, then GETs say-hello through
# it with X-Request-ID; ok when the answer is 200 "Hello, PF!" and the header
# is echoed (check_say_hello, shared with the image test). Runs where kubectl
# runs ($KUBECTL, default kubectl).
set -uo pipefail
namespace=$1 target=$2 local_port=$3 remote_port=$4 request_id=$5
kubectl=${KUBECTL:-kubectl}
log=$(mktemp)
"$kubectl" -n "$namespace" port-forward "$target" "$local_port:$remote_port" >"$log" 2>&1 &
pf=$!
trap 'kill $pf 2>/dev/null; rm -f "$log"' EXIT
# kubectl prints "Forwarding from 127.0.0.1:PORT" once it listens.
for ((i = 0; i < 60; i++)); do
  grep -q "Forwarding from 127.0.0.1:$local_port" "$log" && break
  kill -0 "$pf" 2>/dev/null || break
  sleep 0.5
done
grep -q "Forwarding from" "$log" || {
  echo "kubectl port-forward $target did not listen: $(head -3 "$log")"
  exit 1
}
# shellcheck source=tests/kind/checks.sh
source "$(dirname "$0")/../kind/checks.sh"
check_say_hello "http://127.0.0.1:$local_port" "$request_id" pf
