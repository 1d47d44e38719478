#!/usr/bin/env bash
# port-forward.sh NAMESPACE TARGET LOCAL_PORT REMOTE_PORT REQUEST_ID: runs
# `kubectl port-forward`, waits for its listener, then GETs say-hello through
# it with X-Request-ID; ok when the answer is 200 "Hello, PF!" and the header
# is echoed. Runs where kubectl runs ($KUBECTL, default kubectl).
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
response=$(curl -s -i --max-time 10 -H "X-Request-ID: $request_id" \
  "http://127.0.0.1:$local_port/api/v1/say-hello?name=pf") || {
  echo "no answer through the port-forward (curl exit $?)"
  exit 1
}
head=${response%%$'\r\n\r\n'*}
body=${response#*$'\r\n\r\n'}
if [[ $head == "HTTP/1.1 200"* && $body == '"Hello, PF!"' ]] &&
  grep -qixF "x-request-id: $request_id"$'\r' <<<"$head"; then
  echo "port-forward $target: GET say-hello -> 200 $body, X-Request-ID $request_id echoed"
  exit 0
fi
echo "port-forward $target: GET say-hello -> ${head%%$'\r'*} $body (want 200 \"Hello, PF!\" and x-request-id: $request_id)"
exit 1
