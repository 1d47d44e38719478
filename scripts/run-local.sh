#!/usr/bin/env bash
# Runs both services on this host with their defaults: service1 REST on
# :8080 and gRPC on :50051, service2 REST on :8081, admin ports :9080 and
# :9081, mTLS between them with the development certificates in certs/dev
# (`make certs`). Ctrl-C (SIGINT) reaches both, and each drains and exits
# on its own.
#
# Each port can be moved, e.g. `SERVICE2_REST_PORT=18081 make run`. Before
# starting anything, a port another process already listens on is named,
# with the variable that moves it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug

s1_rest=${SERVICE1_REST_PORT:-8080}
s1_grpc=${SERVICE1_GRPC_PORT:-50051}
s1_admin=${SERVICE1_ADMIN_PORT:-9080}
s2_rest=${SERVICE2_REST_PORT:-8081}
s2_admin=${SERVICE2_ADMIN_PORT:-9081}

# Something accepts connections on 127.0.0.1:PORT (the services listen on
# every address, loopback included).
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

taken=0
for entry in "$s1_rest service1 REST SERVICE1_REST_PORT" "$s1_grpc service1 gRPC SERVICE1_GRPC_PORT" \
    "$s1_admin service1 admin SERVICE1_ADMIN_PORT" "$s2_rest service2 REST SERVICE2_REST_PORT" \
    "$s2_admin service2 admin SERVICE2_ADMIN_PORT"; do
    read -r port service what variable <<<"$entry"
    if listening "$port"; then
        echo "make run: port $port ($service $what) is in use by another process; stop it, or move ours: $variable=$((port + 10000)) make run" >&2
        taken=1
    fi
done
[[ $taken == 0 ]] || exit 1

certs=certs/dev
# Nothing balances over these two processes, so there is no one to tell to
# stop routing here before exiting: skip the drain delay.
export DRAIN_DELAY=0s
PORT=$s1_rest GRPC_PORT=$s1_grpc ADMIN_PORT=$s1_admin \
  TLS_CERT=$certs/service1.crt TLS_KEY=$certs/service1.key TLS_CA=$certs/ca.crt \
  "$bin/service1" &
service1=$!
PORT=$s2_rest ADMIN_PORT=$s2_admin SERVICE1_CHANNEL=localhost:$s1_grpc \
  TLS_CERT=$certs/service2.crt TLS_KEY=$certs/service2.key TLS_CA=$certs/ca.crt \
  "$bin/service2" &
service2=$!

# If either exits on its own (a port taken meanwhile, say), stop the other too.
trap 'kill -TERM "$service1" "$service2" 2>/dev/null || true' INT TERM
status=0
wait -n "$service1" "$service2" || status=$?
kill -TERM "$service1" "$service2" 2>/dev/null || true
wait "$service1" "$service2" 2>/dev/null || true
exit "$status"
