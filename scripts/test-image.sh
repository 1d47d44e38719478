#!/usr/bin/env bash
# `make test-image`: builds the real Dockerfile with podman and checks the
# image does what the Helm chart and compose users rely on. Runs on a fresh
# Debian 12 machine as root with nothing but package registries (our CI):
#
#  1. installs podman, runc, debootstrap (apt) when missing, and configures
#     podman's runtime only where this VM needs it (see below);
#  2. uses the Dockerfile's public base images if they can be pulled, or
#     else local stand-ins made by scripts/build-local-base-images.sh
#     (Debian via debootstrap, the host's Rust toolchain, a distroless-like
#     runtime) -- the Dockerfile is the same, only --build-arg differs;
#  3. podman build -t localhost/grpc-services:test .
#  4. checks the image's contract (user 65532, the binaries, no shell), then
#     runs the repository's compose.yaml, as users do, with podman-compose
#     (pinned, in a virtualenv under target/): the `certs` init step makes the
#     certificates with certgen, three service1 replicas share one network
#     alias, service2 finds them with dns:///service1:50051; all read-only,
#     without capabilities, as UID 65532. It checks the API through the
#     published port, request ids in both services' logs, balancing, the
#     in-image `smoke` checker (the `helm test` hook), that killing a replica
#     under load fails no request, and that stopping one (SIGTERM: drain, exit
#     0) fails none either. Everything it made goes away by name and label.
#
# Ends with `image tests: N passed, N failed`; exit status 1 if any failed.
# Env: BASE_IMAGES=auto|public|local (auto), IMAGE (localhost/grpc-services:test),
#      SKIP_BUILD=1 to test an IMAGE built already, BUILD_ONLY=1 to only build it.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/grpc-services:test}
BASE_IMAGES=${BASE_IMAGES:-auto}
SKIP_BUILD=${SKIP_BUILD:-0}
# The Dockerfile's defaults, and their local stand-ins.
PUBLIC_RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
PUBLIC_RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
LOCAL_RUST_IMAGE=localhost/rust:bookworm
LOCAL_RUNTIME_IMAGE=localhost/distroless-cc:nonroot

# The compose project: every container, the pod, the network and the
# volumes carry its name and the label com.docker.compose.project.
PROJECT=grpc-services-imgtest
NET=${PROJECT}_default # podman-compose's (and docker compose's) default network
PODMAN_COMPOSE_VERSION=1.6.0
# Not .venv-compose: the build context would carry it (.dockerignore leaves
# out target/ and .venv/ only) and every new venv would bust the COPY layers.
COMPOSE_VENV=target/podman-compose-venv

log() { echo "test-image: $*" >&2; }

passed=0
failed=0
pass() {
  passed=$((passed + 1))
  echo "ok   - $*"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL - $*"
}

# --- 1. podman ---------------------------------------------------------------
need=()
for tool in podman runc debootstrap curl; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [[ ${#need[@]} -gt 0 ]]; then
  if [[ $EUID -ne 0 ]]; then
    log "missing ${need[*]}; install them (Debian: apt-get install podman runc debootstrap curl)"
    exit 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Can podman start a container? On our CI VMs it cannot out of the box: root
# there lacks CAP_SYS_RESOURCE (hard nofile limit 20000) while podman asks
# for a higher one, and Debian's crun refuses the VM's hybrid cgroup layout.
# Only then, and only if the machine has no podman configuration of its own,
# write one that fixes both (limits within the hard limit, runc).
ensure_runtime() { # IMAGE COMMAND...: a command that succeeds in IMAGE
  local probe=("$@")
  podman run --rm --net=none "${probe[@]}" >/dev/null 2>&1 && return
  local conf=/etc/containers/containers.conf
  if [[ $EUID -ne 0 || -e $conf ]]; then
    log "podman cannot start containers here:"
    podman run --rm --net=none "${probe[@]}" || true
    exit 1
  fi
  log "podman cannot start containers with its defaults: writing $conf (runc, nofile/nproc within this VM's limits)"
  mkdir -p /etc/containers
  cat >"$conf" <<'EOF'
# Written by scripts/test-image.sh: on this VM root lacks CAP_SYS_RESOURCE
# (hard nofile limit 20000), so podman's default ulimits fail every container,
# and Debian's crun refuses the VM's cgroup layout; runc works.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
  podman run --rm --net=none "${probe[@]}"
}

# --- 2. base images ------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
  if [[ $BASE_IMAGES == auto ]]; then
    if timeout 600 podman pull -q "$PUBLIC_RUST_IMAGE" >/dev/null 2>&1 &&
      timeout 300 podman pull -q "$PUBLIC_RUNTIME_IMAGE" >/dev/null 2>&1; then
      BASE_IMAGES=public
    else
      log "the public base images cannot be pulled: using local stand-ins"
      BASE_IMAGES=local
    fi
  fi
  case $BASE_IMAGES in
    public)
      rust_image=$PUBLIC_RUST_IMAGE runtime_image=$PUBLIC_RUNTIME_IMAGE
      ensure_runtime "$rust_image" true
      ;;
    local)
      rust_image=$LOCAL_RUST_IMAGE runtime_image=$LOCAL_RUNTIME_IMAGE
      # Importing the Debian image needs no container runtime; the others do.
      scripts/build-local-base-images.sh debian
      ensure_runtime localhost/debian:bookworm-slim true
      scripts/build-local-base-images.sh rust runtime
      ;;
    *)
      log "BASE_IMAGES must be auto, public or local"
      exit 2
      ;;
  esac

  # --- 3. build ----------------------------------------------------------------
  log "podman build -t $IMAGE (RUST_IMAGE=$rust_image RUNTIME_IMAGE=$runtime_image)"
  build_start=$SECONDS
  podman build --build-arg RUST_IMAGE="$rust_image" --build-arg RUNTIME_IMAGE="$runtime_image" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$IMAGE" .
  log "built in $((SECONDS - build_start)) s"
  # make test-cluster builds the image this way when it is missing.
  [[ ${BUILD_ONLY:-0} != 1 ]] || exit 0
else
  ensure_runtime "$IMAGE" /usr/local/bin/service2 --version
  # compose.yaml's certs step runs in the builder's Rust image: whichever is here.
  if podman image exists "$PUBLIC_RUST_IMAGE"; then
    rust_image=$PUBLIC_RUST_IMAGE
  else
    scripts/build-local-base-images.sh rust
    rust_image=$LOCAL_RUST_IMAGE
  fi
fi

# --- 4. tests ------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-image.XXXXXX")
project_label=label=com.docker.compose.project=$PROJECT
project_containers() { # [SERVICE]: the project's container names (of SERVICE), sorted
  local filters=(--filter "$project_label")
  [[ $# -eq 0 ]] || filters+=(--filter "label=com.docker.compose.service=$1")
  podman ps -a "${filters[@]}" --format '{{.Names}}' | sort
}
# By name and label, not only `podman-compose down`: that can leave scaled
# containers behind, and an interrupted run leaves everything.
cleanup() {
  local ids
  podman rm -f -t 0 "$PROJECT-smoke" >/dev/null 2>&1 || true
  podman pod rm -f -t 0 "pod_$PROJECT" >/dev/null 2>&1 || true
  mapfile -t ids < <(podman ps -aq --filter "$project_label" 2>/dev/null)
  [[ ${#ids[@]} -eq 0 ]] || podman rm -f -t 0 --depend "${ids[@]}" >/dev/null 2>&1 || true
  mapfile -t ids < <(podman volume ls -q --filter "$project_label" 2>/dev/null)
  [[ ${#ids[@]} -eq 0 ]] || podman volume rm -f "${ids[@]}" >/dev/null 2>&1 || true
  podman network rm -f "$NET" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cleanup # leftovers of an interrupted run
mkdir -p "$tmp"

# The image's contract: numeric non-root user, default command, three binaries.
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
cmd=$(podman image inspect --format '{{json .Config.Cmd}}' "$IMAGE")
if [[ $user == 65532:65532 && $cmd == '["/usr/local/bin/service2"]' ]]; then
  pass "image runs as 65532:65532, default command service2"
else
  fail "image user '$user' (want 65532:65532), cmd $cmd"
fi

runs() { podman run --rm --net=none --read-only --cap-drop=ALL "$IMAGE" "$@" >/dev/null 2>&1; }
smoke_usage=0
runs /usr/local/bin/smoke || smoke_usage=$?
if runs /usr/local/bin/service1 --version && runs /usr/local/bin/service2 --version && [[ $smoke_usage == 2 ]]; then
  pass "service1, service2 and smoke are in /usr/local/bin (smoke without arguments exits 2)"
else
  fail "binaries: service1/service2 --version failed or smoke without arguments exited $smoke_usage (want 2)"
fi

sh_status=0
podman run --rm --net=none "$IMAGE" /bin/sh -c true >/dev/null 2>&1 || sh_status=$?
if [[ $sh_status == 127 ]]; then
  pass "no shell in the image (/bin/sh: not found)"
else
  fail "/bin/sh in the image: podman run exited $sh_status (want 127, not found)"
fi

# podman-compose, pinned, in its own virtualenv (PyPI only).
if [[ $("$COMPOSE_VENV/bin/podman-compose" --version 2>/dev/null) != *"podman-compose version $PODMAN_COMPOSE_VERSION"* ]]; then
  log "installing podman-compose $PODMAN_COMPOSE_VERSION into $COMPOSE_VENV"
  rm -rf "$COMPOSE_VENV"
  python3 -m venv "$COMPOSE_VENV"
  "$COMPOSE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "podman-compose==$PODMAN_COMPOSE_VERSION"
fi

# compose.yaml as users run it; only its variables differ: the image under
# test, the Rust image the certs step runs in, and free loopback ports.
read -r http_port admin_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
http=127.0.0.1:$http_port
admin=127.0.0.1:$admin_port
compose=(env IMAGE="$IMAGE" RUST_IMAGE="$rust_image" SERVICE2_PORT="$http_port" SERVICE2_ADMIN_PORT="$admin_port"
  "$COMPOSE_VENV/bin/podman-compose" -p "$PROJECT" -f compose.yaml)

curl_() { curl -s --max-time 5 "$@"; }
# The HTTP checks, shared with the kind test (tests/kind/run.sh).
# shellcheck source=tests/kind/checks.sh
source tests/kind/checks.sh
ready_endpoints() { # prints service2's count of ready service1 replicas
  curl_ "http://$admin/readyz" | grep -o '"service1_endpoints":{[^}]*}' |
    grep -o '"ready":[0-9]*' | grep -o '[0-9]*$' || echo 0
}
wait_for_ready() { # WANT SECONDS
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    [[ $(ready_endpoints) == "$1" ]] && return 0
    sleep 0.5
  done
  return 1
}
show_logs() {
  echo "--- last lines of podman-compose up"
  tail -n 15 "$tmp/compose-up.log" 2>/dev/null || true
  local c
  for c in $(project_containers); do
    echo "--- last log lines of $c"
    podman logs --tail 15 "$c" 2>&1 || true
  done
}

log "podman-compose up -d (IMAGE=$IMAGE; the certs step compiles certgen in $rust_image: 20 s here)"
up_start=$SECONDS
up_status=0
timeout 900 "${compose[@]}" up -d --no-build >"$tmp/compose-up.log" 2>&1 || up_status=$?
log "podman-compose up -d: exit $up_status after $((SECONDS - up_start)) s"
mapfile -t service1s < <(project_containers service1)
service2=$(project_containers service2 | head -n 1)
certs=$(project_containers certs | head -n 1)

# The init step: certgen wrote the set, the services' keys belong to their
# user (65532) and stay owner-only, the CA key is root's alone.
certs_exit=$(podman inspect --format '{{.State.ExitCode}}' "$certs" 2>/dev/null || echo none)
certs_dir=$(podman volume inspect --format '{{.Mountpoint}}' "${PROJECT}_certs" 2>/dev/null || echo /nonexistent)
modes=$(for f in ca.key service1.key service2.key; do stat -c "$f %u:%g %a" "$certs_dir/$f" 2>&1 || true; done | tr '\n' ' ')
if [[ $certs_exit == 0 ]] && podman logs "$certs" 2>&1 | grep '^/certs: wrote ' >/dev/null &&
  [[ $modes == "ca.key 0:0 600 service1.key 65532:65532 600 service2.key 65532:65532 600 " ]]; then
  pass "certs init step: certgen wrote the set (exit 0); ${modes% }"
else
  fail "certs init step: exit $certs_exit, files: ${modes:-none}"
  podman logs --tail 20 "$certs" 2>&1 || true
fi

if [[ $up_status == 0 && ${#service1s[@]} == 3 && -n $service2 ]] && wait_for_ready 3 60; then
  pass "compose up: service2 ready with 3 service1 replicas (${service1s[*]}) behind one alias (dns:///service1:50051, aardvark-dns, mTLS)"
else
  fail "compose up (exit $up_status, service1 replicas: ${service1s[*]:-none}, service2: ${service2:-none}): $(curl_ "http://$admin/readyz" || true)"
  show_logs
fi

# Run the way compose.yaml says: UID 65532, no capabilities, no privilege
# escalation, read-only root filesystem.
hardening() { # CONTAINER: UIDs (real effective saved fs), CapEff, NoNewPrivs, read-only root
  local pid
  pid=$(podman inspect --format '{{.State.Pid}}' "$1") || return 0
  awk '/^Uid:/ { u = $2 " " $3 " " $4 " " $5 } /^CapEff:/ { c = $2 } /^NoNewPrivs:/ { n = $2 }
    END { printf "uid %s capeff %s nnp %s", u, c, n }' "/proc/$pid/status"
  printf ' ro %s\n' "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$1")"
}
want_hardening="uid 65532 65532 65532 65532 capeff 0000000000000000 nnp 1 ro true"
got_hardening="$(hardening "${service1s[0]:-none}" 2>&1) / $(hardening "${service2:-none}" 2>&1)"
if [[ $got_hardening == "$want_hardening / $want_hardening" ]]; then
  pass "service1 and service2 run as UID 65532, no capabilities, no_new_privs, read-only root"
else
  fail "hardening of service1 / service2: $got_hardening (want $want_hardening)"
fi

request_id=image-test-$$-$RANDOM
if out=$(check_say_hello "http://$http" "$request_id" image); then pass "$out (published port)"; else fail "$out"; fi

# Logs go through a background writer: give them a moment. (No `grep -q` at
# the end of a pipe from `podman logs`: under pipefail, the writer's SIGPIPE
# when grep stops reading early would count as not found.)
logged() { # MESSAGE CONTAINER...: a line with the request id and MESSAGE?
  local message=$1 c
  shift
  for c in "$@"; do podman logs "$c" 2>&1; done |
    grep -F "\"request_id\":\"$request_id\"" | grep -F "\"message\":\"$message\"" >/dev/null
}
found=0
for _ in $(seq 20); do
  if logged "http request served" "$service2" && logged "grpc call served" "${service1s[@]}"; then
    found=1
    break
  fi
  sleep 0.25
done
if [[ $found == 1 ]]; then
  pass "request_id $request_id in service2's and a service1 replica's JSON logs (podman logs)"
else
  fail "request_id $request_id missing from the logs"
fi

# Per-request balancing: 60 calls reach every replica.
call_many "http://$http" "$request_id-b" 60 >/dev/null || true
sleep 1
counts=()
for c in "${service1s[@]}"; do
  counts+=("$(podman logs "$c" 2>&1 | count_served "$request_id-b")")
done
if ((${#counts[@]} == 3 && counts[0] > 0 && counts[1] > 0 && counts[2] > 0)); then
  pass "every service1 replica served calls (${counts[*]} of 60)"
else
  fail "calls per service1 replica: ${counts[*]} of 60"
fi

# The `helm test` hook's checker, from the image, by service name on the
# compose network.
smoke() { podman run --rm --name "$PROJECT-smoke" --network "$NET" --read-only --cap-drop=ALL "$IMAGE" /usr/local/bin/smoke "$@"; }
if out=$(smoke 'http://service2:8081/api/v1/say-hello?name=smoke' '"Hello, SMOKE!"'); then
  pass "smoke from the image: $out"
else
  fail "smoke from the image: $out"
fi
status=0
out=$(smoke 'http://service2:8081/api/v1/say-hello?name=smoke' '"Hello, WRONG!"') || status=$?
if [[ $status == 1 ]]; then
  pass "smoke exits 1 on an unexpected body"
else
  fail "smoke on an unexpected body exited $status: $out"
fi

# Kill one replica (SIGKILL: no drain, its connections reset) while calls
# keep coming, and keep calling for a few seconds after: service2 retries on
# another replica, then drops the dead one at its next DNS answer.
victim=${service1s[0]:-none}
(
  sleep 1
  podman kill "$victim" >/dev/null
  sleep 5
) &
killer=$!
if out=$(calls_during "$killer" "http://$http"); then
  pass "podman kill of a service1 replica under load: $out"
else
  fail "podman kill of a service1 replica under load: $out"
fi
wait "$killer" || true
if [[ $(podman inspect --format '{{.State.ExitCode}}' "$victim" 2>&1) == 137 ]] && wait_for_ready 2 30; then
  pass "the killed replica exited 137 (SIGKILL); service2 dropped it (2 ready)"
else
  fail "after the kill: $victim exit $(podman inspect --format '{{.State.ExitCode}}' "$victim" 2>&1), $(ready_endpoints) ready replicas"
fi

# Stop another (SIGTERM: drain, then exit) while calls keep coming.
victim=${service1s[1]:-none}
podman stop -t 30 "$victim" >/dev/null &
stopper=$!
if out=$(calls_during "$stopper" "http://$http"); then
  pass "stopping a service1 replica under load: $out"
else
  fail "stopping a service1 replica under load: $out"
fi
wait "$stopper" || true
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$victim" 2>&1) || true
if [[ $exit_code == 0 ]] && podman logs "$victim" 2>&1 | grep 'shutdown requested' >/dev/null && wait_for_ready 1 30; then
  pass "the stopped replica drained and exited 0 on SIGTERM as PID 1; service2 dropped it (1 ready)"
else
  fail "the stopped replica exited $exit_code; service2 reports $(ready_endpoints) ready replicas"
fi

# Not a check, a hint: replicas dropped although they were up (a DNS answer
# without them) show here as more than the two expected removals.
removals=$(podman logs "$service2" 2>&1 | grep -c '"message":"service1 replica removed' || true)
echo "note: service2 logged $removals \"service1 replica removed\" events (2 expected: the killed and the stopped replica)"
((failed == 0)) || show_logs

timeout 120 "${compose[@]}" down -v -t 5 >"$tmp/compose-down.log" 2>&1 || true
left=$(project_containers | tr '\n' ' ')
echo "note: after podman-compose down -v: ${left:-no} containers left (the exit trap removes leftovers by label)"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $((size / 1000000)) MB ($size bytes)"
echo "image tests: $passed passed, $failed failed"
((failed == 0))
