#!/usr/bin/env bash
# Runs both services on this host with their defaults: service1 REST on
# :8080 and gRPC on :50051, service2 REST on :8081, mTLS between them with
# the development certificates in certs/dev (`make certs`). Ctrl-C (SIGINT)
# reaches both, and each drains and exits on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug

certs=certs/dev
# Nothing balances over these two processes, so there is no one to tell to
# stop routing here before exiting: skip the drain delay.
export DRAIN_DELAY=0s
TLS_CERT=$certs/service1.crt TLS_KEY=$certs/service1.key TLS_CA=$certs/ca.crt \
  "$bin/service1" &
service1=$!
TLS_CERT=$certs/service2.crt TLS_KEY=$certs/service2.key TLS_CA=$certs/ca.crt \
  "$bin/service2" &
service2=$!

# If either exits on its own (a port in use, say), stop the other too.
trap 'kill -TERM "$service1" "$service2" 2>/dev/null || true' INT TERM
status=0
wait -n "$service1" "$service2" || status=$?
kill -TERM "$service1" "$service2" 2>/dev/null || true
wait "$service1" "$service2" 2>/dev/null || true
exit "$status"
