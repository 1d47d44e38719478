#!/usr/bin/env bash
# Runs both services on this host with their defaults: service1 REST on
# :8080 and gRPC on :50051, service2 REST on :8081. Ctrl-C (SIGINT) reaches
# both, and each drains and exits on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug

"$bin/service1" &
service1=$!
"$bin/service2" &
service2=$!

# If either exits on its own (a port in use, say), stop the other too.
trap 'kill -TERM "$service1" "$service2" 2>/dev/null || true' INT TERM
status=0
wait -n "$service1" "$service2" || status=$?
kill -TERM "$service1" "$service2" 2>/dev/null || true
wait "$service1" "$service2" 2>/dev/null || true
exit "$status"
