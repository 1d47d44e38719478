#!/usr/bin/env bash
# `make test-image`: runs `docker compose up --build` as the README promises,
# on a real Docker engine, then the same compose.yaml with podman-compose,
# and checks both do what the Helm chart and compose users rely on. Runs on
# a fresh Debian 12 machine as root with nothing but package registries and
# the Go module proxy (our CI):
#
#  1. installs docker.io, podman, runc, debootstrap, curl (apt) when missing;
#     configures podman's runtime only where this VM needs it (see below);
#     builds Docker Compose v2 from its Go module (tests/compose-tool, pinned;
#     the binary is kept in target/compose-tool/VERSION/) and installs it as
#     a docker CLI plugin in a private DOCKER_CONFIG;
#  2. starts a private dockerd (scripts/private-dockerd.sh: its own
#     containerd, data-root under target/, socket, bridge), stopped at exit;
#  3. uses the Dockerfile's public base images if they can be pulled, or
#     else local stand-ins made by scripts/build-local-base-images.sh
#     (Debian via debootstrap, the host's Rust toolchain, a distroless-like
#     runtime; made with podman, then `podman save | docker load`) -- the
#     Dockerfile and compose.yaml are the same, only their variables differ;
#  4. `docker compose up -d --build`: Compose builds the image from the
#     Dockerfile with the engine's BuildKit and starts the project; checks
#     the image's contract (user 65532, the binaries, no shell); then the
#     compose checks: the `certs` init step makes the certificates with
#     certgen, three service1 replicas share one name, service2 finds them
#     with dns:///service1:50051; all read-only, without capabilities, as UID
#     65532. The API through the published port, request ids in both
#     services' logs, balancing, the in-image `smoke` checker (the `helm
#     test` hook), that killing a replica under load fails no request, and
#     that stopping one (SIGTERM: drain, exit 0) fails none either. Then
#     `docker compose down -v`;
#  5. the same image (`docker save | podman load`) and the same checks with
#     podman-compose (pinned, in a virtualenv under target/): podman users
#     run compose.yaml through a different implementation (depends_on as
#     podman --requires, aardvark-dns, no `down` of scaled containers), so
#     it is checked too. Everything it made goes away by name and label.
#
# Ends with `image tests: N passed, N failed`; exit status 1 if any failed.
# Env: BASE_IMAGES=auto|public|local (auto), IMAGE (localhost/grpc-services:test),
#      SKIP_BUILD=1 to test an IMAGE built already (in the private dockerd),
#      BUILD_ONLY=1 to only build it (`docker compose build`) and copy it
#      into podman's store (make test-cluster imports it from there),
#      ENGINES="docker podman" (both; one of them to run only its checks),
#      IMAGE_OWN_MAX_MB (30): the bound on the image's size above its base.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/grpc-services:test}
BASE_IMAGES=${BASE_IMAGES:-auto}
SKIP_BUILD=${SKIP_BUILD:-0}
ENGINES=${ENGINES:-docker podman}
# The image's own layers (the three binaries), above its runtime base: at
# most this many MB (10^6 bytes, as the engines print sizes). Measured
# 24.8 MB (38.1 MB with the local 13.3 MB base) on 2026-12-07, main at
# 5f4e5d8 (an image of another work tree of that hour: revision label unknown).
IMAGE_OWN_MAX_MB=${IMAGE_OWN_MAX_MB:-30}
# The Dockerfile's defaults, and their local stand-ins.
PUBLIC_RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
PUBLIC_RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
LOCAL_RUST_IMAGE=localhost/rust:bookworm
LOCAL_RUNTIME_IMAGE=localhost/distroless-cc:nonroot

# The compose project: every container, the network and the volumes carry
# its name and the label com.docker.compose.project (podman-compose: and
# the pod).
PROJECT=grpc-services-imgtest
NET=${PROJECT}_default # docker compose's and podman-compose's default network
PODMAN_COMPOSE_VERSION=1.6.0
# Not .venv-compose: the build context would carry it (.dockerignore leaves
# out target/ and .venv/ only) and every new venv would bust the COPY layers.
COMPOSE_VENV=target/podman-compose-venv
COMPOSE_TOOL=tests/compose-tool
# The docker CLI finds compose as a plugin here, and nothing of the user's
# own ~/.docker is read. Only for `docker compose`: podman reads
# DOCKER_CONFIG too (for registry logins) and fails without a config.json.
DOCKER_CONFIG_DIR=$PWD/target/compose-tool/docker-config

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
has() { [[ " $ENGINES " == *" $1 "* ]]; }

# --- 1. tools ------------------------------------------------------------------
need=()
for tool in podman:podman runc:runc debootstrap:debootstrap curl:curl dockerd:docker.io docker:docker.io; do
  command -v "${tool%%:*}" >/dev/null || [[ " ${need[*]} " == *" ${tool#*:} "* ]] || need+=("${tool#*:}")
done
if [[ ${#need[@]} -gt 0 ]]; then
  if [[ $EUID -ne 0 ]]; then
    log "missing ${need[*]}; install them (Debian: apt-get install ${need[*]})"
    exit 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq
  # No daemon starts: there is no init system here to start docker.service,
  # and none would be used (scripts/private-dockerd.sh runs its own).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [[ $EUID -ne 0 ]]; then
  log "needs root (a private dockerd, podman's root storage)"
  exit 1
fi

# Docker Compose v2 from its Go module, cached by version (tests/compose-tool).
compose_bin=$("$COMPOSE_TOOL/build.sh")
mkdir -p "$DOCKER_CONFIG_DIR/cli-plugins"
ln -sfn "$compose_bin" "$DOCKER_CONFIG_DIR/cli-plugins/docker-compose"

# Can podman start a container? On our CI VMs it cannot out of the box: root
# there lacks CAP_SYS_RESOURCE (hard nofile limit 20000) while podman asks
# for a higher one, and Debian's crun refuses the VM's hybrid cgroup layout.
# Only then, and only if the machine has no podman configuration of its own,
# write one that fixes both (limits within the hard limit, runc). (dockerd
# needs no such file: scripts/private-dockerd.sh passes its settings.)
ensure_runtime() { # IMAGE COMMAND...: a command that succeeds in IMAGE
  local probe=("$@")
  podman run --rm --net=none "${probe[@]}" >/dev/null 2>&1 && return
  local conf=/etc/containers/containers.conf
  if [[ -e $conf ]]; then
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

# --- 2. the private Docker engine ---------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-image.XXXXXX")
project_label=label=com.docker.compose.project=$PROJECT
# Whatever the project left in ENGINE, by name and label, not only through
# `compose down`: podman-compose's leaves scaled containers behind, and an
# interrupted run leaves everything.
clean_project() { # ENGINE
  local engine=$1 ids
  $engine rm -f "$PROJECT-smoke" >/dev/null 2>&1 || true
  [[ $engine == docker ]] || podman pod rm -f -t 0 "pod_$PROJECT" >/dev/null 2>&1 || true
  mapfile -t ids < <($engine ps -aq --filter "$project_label" 2>/dev/null)
  if [[ ${#ids[@]} -gt 0 ]]; then
    if [[ $engine == docker ]]; then
      docker rm -f "${ids[@]}" >/dev/null 2>&1 || true
    else
      podman rm -f -t 0 --depend "${ids[@]}" >/dev/null 2>&1 || true
    fi
  fi
  mapfile -t ids < <($engine volume ls -q --filter "$project_label" 2>/dev/null)
  [[ ${#ids[@]} -eq 0 ]] || $engine volume rm -f "${ids[@]}" >/dev/null 2>&1 || true
  $engine network rm "$NET" >/dev/null 2>&1 || true
}
dockerd_started=0
cleanup() {
  clean_project podman
  if [[ $dockerd_started == 1 ]]; then
    clean_project docker
    # Images a rebuild replaced (the build cache stays: the next run is warm).
    docker image prune -f >/dev/null 2>&1 || true
    scripts/private-dockerd.sh stop || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
clean_project podman # leftovers of an interrupted run
mkdir -p "$tmp"

# The image is built and kept there, whichever engines are checked.
dockerd_started=1
docker_host=$(scripts/private-dockerd.sh start) # DOCKER_HOST=unix://...
export "${docker_host?}"
clean_project docker # leftovers of an interrupted run (kept in the data-root)

# IMAGE from one engine's store into the other's, unless it is there already
# (same image ID). podman save writes a docker-archive, which keeps the ID.
image_id() { $1 image inspect --format '{{.Id}}' "$2" 2>/dev/null | sed 's/^sha256://'; }
copy_image() { # FROM TO IMAGE
  local from=$1 to=$2 image=$3 old
  old=$(image_id "$to" "$image" || true)
  [[ -n $old && $old == "$(image_id "$from" "$image")" ]] && return
  log "$from save $image | $to load"
  $from save "$image" | $to load -q >/dev/null
  # The replaced image, if nothing else uses it (podman's store is the machine's).
  [[ -z $old ]] || $to rmi "$old" >/dev/null 2>&1 || true
}

# --- 3. base images ------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
  if [[ $BASE_IMAGES == auto ]]; then
    if timeout 600 docker pull -q "$PUBLIC_RUST_IMAGE" >/dev/null 2>&1 &&
      timeout 300 docker pull -q "$PUBLIC_RUNTIME_IMAGE" >/dev/null 2>&1; then
      BASE_IMAGES=public
    else
      log "the public base images cannot be pulled: using local stand-ins"
      BASE_IMAGES=local
    fi
  fi
  case $BASE_IMAGES in
    public)
      rust_image=$PUBLIC_RUST_IMAGE runtime_image=$PUBLIC_RUNTIME_IMAGE
      ;;
    local)
      rust_image=$LOCAL_RUST_IMAGE runtime_image=$LOCAL_RUNTIME_IMAGE
      # Importing the Debian image needs no container runtime; the others do.
      scripts/build-local-base-images.sh debian
      ensure_runtime localhost/debian:bookworm-slim true
      scripts/build-local-base-images.sh rust runtime
      copy_image podman docker "$rust_image"
      copy_image podman docker "$runtime_image"
      ;;
    *)
      log "BASE_IMAGES must be auto, public or local"
      exit 2
      ;;
  esac
else
  # compose.yaml's certs step runs in the builder's Rust image: whichever is here.
  if docker image inspect "$PUBLIC_RUST_IMAGE" >/dev/null 2>&1; then
    rust_image=$PUBLIC_RUST_IMAGE
  else
    scripts/build-local-base-images.sh rust
    rust_image=$LOCAL_RUST_IMAGE
    copy_image podman docker "$rust_image"
  fi
  if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "SKIP_BUILD=1: $IMAGE is not in the private dockerd; run without SKIP_BUILD first"
    exit 1
  fi
  runtime_image=unused
fi

# --- 4, 5. compose ---------------------------------------------------------------
# compose.yaml as users run it; only its variables differ: the image under
# test, the base images, and free loopback ports.
read -r http_port admin_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
http=127.0.0.1:$http_port
admin=127.0.0.1:$admin_port
compose_env=(env IMAGE="$IMAGE" RUST_IMAGE="$rust_image" RUNTIME_IMAGE="$runtime_image"
  SERVICE2_PORT="$http_port" SERVICE2_ADMIN_PORT="$admin_port")
docker_compose=("${compose_env[@]}" DOCKER_CONFIG="$DOCKER_CONFIG_DIR" docker compose -p "$PROJECT" -f compose.yaml)

# make test-cluster builds the image this way (always: layer-cached, so a
# stale image is never tested) and imports it from podman's store.
if [[ ${BUILD_ONLY:-0} == 1 && $SKIP_BUILD != 1 ]]; then
  log "BUILD_ONLY=1: docker compose build, then $IMAGE into podman"
  "${docker_compose[@]}" build service2
  copy_image docker podman "$IMAGE"
  exit 0
fi

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

# The image's contract: numeric non-root user, default command, three
# binaries, no shell. ENGINE: whichever holds the image.
image_checks() { # ENGINE
  local engine=$1 user cmd smoke_usage=0 sh_status=0
  user=$($engine image inspect --format '{{.Config.User}}' "$IMAGE" 2>&1) || true
  cmd=$($engine image inspect --format '{{json .Config.Cmd}}' "$IMAGE" 2>&1) || true
  if [[ $user == 65532:65532 && $cmd == '["/usr/local/bin/service2"]' ]]; then
    pass "image runs as 65532:65532, default command service2"
  else
    fail "image user '$user' (want 65532:65532), cmd $cmd"
  fi

  runs() { $engine run --rm --net=none --read-only --cap-drop=ALL "$IMAGE" "$@" >/dev/null 2>&1; }
  runs /usr/local/bin/smoke || smoke_usage=$?
  if runs /usr/local/bin/service1 --version && runs /usr/local/bin/service2 --version && [[ $smoke_usage == 2 ]]; then
    pass "service1, service2 and smoke are in /usr/local/bin (smoke without arguments exits 2)"
  else
    fail "binaries: service1/service2 --version failed or smoke without arguments exited $smoke_usage (want 2)"
  fi

  # Size: printed, and what the image adds to its runtime base checked
  # against IMAGE_OWN_MAX_MB (with SKIP_BUILD the base may not be here: then
  # the whole image against that bound plus 25 MB, room for a public base).
  local size base_size own limit=$IMAGE_OWN_MAX_MB what
  mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
  size=$($engine image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo 0)
  base_size=$($engine image inspect --format '{{.Size}}' "$runtime_image" 2>/dev/null || echo "")
  if [[ -n $base_size ]]; then
    own=$((size - base_size)) what="its layers above $runtime_image ($(mb "$base_size"))"
  else
    own=$size limit=$((IMAGE_OWN_MAX_MB + 25)) what="the whole image (its base unknown here)"
  fi
  if ((size > 0 && own <= limit * 1000000)); then
    pass "image size $(mb "$size"): $what $(mb "$own"), at most $limit MB"
  else
    fail "image size $(mb "$size"): $what $(mb "$own"), over $limit MB (or no image)"
  fi

  $engine run --rm --net=none "$IMAGE" /bin/sh -c true >/dev/null 2>&1 || sh_status=$?
  if [[ $sh_status == 127 ]]; then
    pass "no shell in the image (/bin/sh: not found)"
  else
    fail "/bin/sh in the image: $engine run exited $sh_status (want 127, not found)"
  fi
}

# Runs compose.yaml with one implementation and checks the result. Sets
# ENGINE (docker or podman: the CLI for inspecting what compose made), NAME
# (prefix of every check) and COMPOSE (the compose command) first.
project_containers() { # [SERVICE]: the project's container names (of SERVICE), sorted
  local filters=(--filter "$project_label")
  [[ $# -eq 0 ]] || filters+=(--filter "label=com.docker.compose.service=$1")
  $ENGINE ps -a "${filters[@]}" --format '{{.Names}}' | sort
}
show_logs() {
  echo "--- last lines of $NAME up"
  tail -n 15 "$tmp/$ENGINE-up.log" 2>/dev/null || true
  local c
  for c in $(project_containers); do
    echo "--- last log lines of $c"
    $ENGINE logs --tail 15 "$c" 2>&1 || true
  done
}
compose_checks() { # UP_ARGS...: extra arguments of `up -d`
  local failed_before=$failed up_start up_status=0 service1s service2 certs
  log "$NAME up -d $* (IMAGE=$IMAGE; the certs step compiles certgen in $rust_image: 20 s here)"
  up_start=$SECONDS
  timeout 1800 "${COMPOSE[@]}" up -d "$@" >"$tmp/$ENGINE-up.log" 2>&1 || up_status=$?
  log "$NAME up -d: exit $up_status after $((SECONDS - up_start)) s"
  mapfile -t service1s < <(project_containers service1)
  service2=$(project_containers service2 | head -n 1)
  certs=$(project_containers certs | head -n 1)

  # Built by `up --build`: the image's own contract first.
  [[ $* != *--build* ]] || image_checks "$ENGINE"

  # The init step: certgen wrote the set, the services' keys belong to their
  # user (65532) and stay owner-only, the CA key is root's alone.
  local certs_exit certs_dir modes f
  certs_exit=$($ENGINE inspect --format '{{.State.ExitCode}}' "$certs" 2>/dev/null || echo none)
  certs_dir=$($ENGINE volume inspect --format '{{.Mountpoint}}' "${PROJECT}_certs" 2>/dev/null || echo /nonexistent)
  modes=$(for f in ca.key service1.key service2.key; do stat -c "$f %u:%g %a" "$certs_dir/$f" 2>&1 || true; done | tr '\n' ' ')
  if [[ $certs_exit == 0 ]] && $ENGINE logs "$certs" 2>&1 | grep '^/certs: wrote ' >/dev/null &&
    [[ $modes == "ca.key 0:0 600 service1.key 65532:65532 600 service2.key 65532:65532 600 " ]]; then
    pass "$NAME: certs init step: certgen wrote the set (exit 0); ${modes% }"
  else
    fail "$NAME: certs init step: exit $certs_exit, files: ${modes:-none}"
    $ENGINE logs --tail 20 "$certs" 2>&1 || true
  fi

  if [[ $up_status == 0 && ${#service1s[@]} == 3 && -n $service2 ]] && wait_for_ready 3 60; then
    pass "$NAME: service2 ready with 3 service1 replicas (${service1s[*]}) behind one name (dns:///service1:50051, $DNS, mTLS)"
  else
    fail "$NAME up (exit $up_status, service1 replicas: ${service1s[*]:-none}, service2: ${service2:-none}): $(curl_ "http://$admin/readyz" || true)"
    show_logs
  fi

  # Run the way compose.yaml says: UID 65532, no capabilities, no privilege
  # escalation, read-only root filesystem.
  hardening() { # CONTAINER: UIDs (real effective saved fs), CapEff, NoNewPrivs, read-only root
    local pid
    pid=$($ENGINE inspect --format '{{.State.Pid}}' "$1") || return 0
    awk '/^Uid:/ { u = $2 " " $3 " " $4 " " $5 } /^CapEff:/ { c = $2 } /^NoNewPrivs:/ { n = $2 }
      END { printf "uid %s capeff %s nnp %s", u, c, n }' "/proc/$pid/status"
    printf ' ro %s\n' "$($ENGINE inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$1")"
  }
  local want_hardening="uid 65532 65532 65532 65532 capeff 0000000000000000 nnp 1 ro true" got_hardening
  got_hardening="$(hardening "${service1s[0]:-none}" 2>&1) / $(hardening "${service2:-none}" 2>&1)"
  if [[ $got_hardening == "$want_hardening / $want_hardening" ]]; then
    pass "$NAME: service1 and service2 run as UID 65532, no capabilities, no_new_privs, read-only root"
  else
    fail "$NAME: hardening of service1 / service2: $got_hardening (want $want_hardening)"
  fi

  local request_id=image-test-$ENGINE-$$-$RANDOM out
  if out=$(check_say_hello "http://$http" "$request_id" image); then
    pass "$NAME: $out (published port $http)"
  else
    fail "$NAME: $out"
  fi

  # Logs go through a background writer: give them a moment. (No `grep -q` at
  # the end of a pipe from `$ENGINE logs`: under pipefail, the writer's SIGPIPE
  # when grep stops reading early would count as not found.)
  logged() { # MESSAGE CONTAINER...: a line with the request id and MESSAGE?
    local message=$1 c
    shift
    for c in "$@"; do $ENGINE logs "$c" 2>&1; done |
      grep -F "\"request_id\":\"$request_id\"" | grep -F "\"message\":\"$message\"" >/dev/null
  }
  local found=0
  for _ in $(seq 20); do
    if logged "http request served" "$service2" && logged "grpc call served" "${service1s[@]}"; then
      found=1
      break
    fi
    sleep 0.25
  done
  if [[ $found == 1 ]]; then
    pass "$NAME: request_id $request_id in service2's and a service1 replica's JSON logs ($ENGINE logs)"
  else
    fail "$NAME: request_id $request_id missing from the logs"
  fi

  # Per-request balancing: 60 calls reach every replica.
  call_many "http://$http" "$request_id-b" 60 >/dev/null || true
  sleep 1
  local counts=() c
  for c in "${service1s[@]}"; do
    counts+=("$($ENGINE logs "$c" 2>&1 | count_served "$request_id-b")")
  done
  if ((${#counts[@]} == 3 && counts[0] > 0 && counts[1] > 0 && counts[2] > 0)); then
    pass "$NAME: every service1 replica served calls (${counts[*]} of 60)"
  else
    fail "$NAME: calls per service1 replica: ${counts[*]} of 60"
  fi

  # The `helm test` hook's checker, from the image, by service name on the
  # compose network.
  smoke() { $ENGINE run --rm --name "$PROJECT-smoke" --network "$NET" --read-only --cap-drop=ALL "$IMAGE" /usr/local/bin/smoke "$@"; }
  if out=$(smoke 'http://service2:8081/api/v1/say-hello?name=smoke' '"Hello, SMOKE!"'); then
    pass "$NAME: smoke from the image: $out"
  else
    fail "$NAME: smoke from the image: $out"
  fi
  local status=0
  out=$(smoke 'http://service2:8081/api/v1/say-hello?name=smoke' '"Hello, WRONG!"') || status=$?
  if [[ $status == 1 ]]; then
    pass "$NAME: smoke exits 1 on an unexpected body"
  else
    fail "$NAME: smoke on an unexpected body exited $status: $out"
  fi

  # Kill one replica (SIGKILL: no drain, its connections reset) while calls
  # keep coming, and keep calling for a few seconds after: service2 retries on
  # another replica, then drops the dead one at its next DNS answer.
  local victim=${service1s[0]:-none} killer stopper exit_code
  (
    sleep 1
    $ENGINE kill "$victim" >/dev/null
    sleep 5
  ) &
  killer=$!
  if out=$(calls_during "$killer" "http://$http"); then
    pass "$NAME: $ENGINE kill of a service1 replica under load: $out"
  else
    fail "$NAME: $ENGINE kill of a service1 replica under load: $out"
  fi
  wait "$killer" || true
  if [[ $($ENGINE inspect --format '{{.State.ExitCode}}' "$victim" 2>&1) == 137 ]] && wait_for_ready 2 30; then
    pass "$NAME: the killed replica exited 137 (SIGKILL); service2 dropped it (2 ready)"
  else
    fail "$NAME: after the kill: $victim exit $($ENGINE inspect --format '{{.State.ExitCode}}' "$victim" 2>&1), $(ready_endpoints) ready replicas"
  fi

  # Stop another (SIGTERM: drain, then exit) while calls keep coming.
  victim=${service1s[1]:-none}
  $ENGINE stop -t 30 "$victim" >/dev/null &
  stopper=$!
  if out=$(calls_during "$stopper" "http://$http"); then
    pass "$NAME: stopping a service1 replica under load: $out"
  else
    fail "$NAME: stopping a service1 replica under load: $out"
  fi
  wait "$stopper" || true
  exit_code=$($ENGINE inspect --format '{{.State.ExitCode}}' "$victim" 2>&1) || true
  if [[ $exit_code == 0 ]] && $ENGINE logs "$victim" 2>&1 | grep 'shutdown requested' >/dev/null && wait_for_ready 1 30; then
    pass "$NAME: the stopped replica drained and exited 0 on SIGTERM as PID 1; service2 dropped it (1 ready)"
  else
    fail "$NAME: the stopped replica exited $exit_code; service2 reports $(ready_endpoints) ready replicas"
  fi

  # Not a check, a hint: replicas dropped although they were up (a DNS answer
  # without them) show here as more than the two expected removals.
  local removals
  removals=$($ENGINE logs "$service2" 2>&1 | grep -c '"message":"service1 replica removed' || true)
  echo "note: $NAME: service2 logged $removals \"service1 replica removed\" events (2 expected: the killed and the stopped replica)"
  ((failed == failed_before)) || show_logs

  timeout 120 "${COMPOSE[@]}" down -v -t 5 >"$tmp/$ENGINE-down.log" 2>&1 || true
  local left
  left=$(project_containers | tr '\n' ' ')
  echo "note: after $NAME down -v: ${left:-no} containers left (removed by label next)"
  clean_project "$ENGINE"
}

if has docker; then
  # As the README says: `docker compose up --build`. Compose v2 builds with
  # the engine's BuildKit through its own builder (no buildx plugin here; it
  # says so in a warning). SKIP_BUILD=1 tests the image built already.
  ENGINE=docker NAME="docker compose" DNS="Docker's embedded DNS"
  COMPOSE=("${docker_compose[@]}")
  if [[ $SKIP_BUILD == 1 ]]; then
    image_checks docker
    compose_checks --no-build
  else
    compose_checks --build
  fi
fi

if has podman; then
  # podman-compose, pinned, in its own virtualenv (PyPI only).
  if [[ $("$COMPOSE_VENV/bin/podman-compose" --version 2>/dev/null) != *"podman-compose version $PODMAN_COMPOSE_VERSION"* ]]; then
    log "installing podman-compose $PODMAN_COMPOSE_VERSION into $COMPOSE_VENV"
    rm -rf "$COMPOSE_VENV"
    python3 -m venv "$COMPOSE_VENV"
    "$COMPOSE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "podman-compose==$PODMAN_COMPOSE_VERSION"
  fi
  # The image Docker built, and the Rust image for the certs step.
  copy_image docker podman "$IMAGE"
  [[ $rust_image == "$LOCAL_RUST_IMAGE" ]] || copy_image docker podman "$rust_image"
  ensure_runtime "$IMAGE" /usr/local/bin/service2 --version
  ENGINE=podman NAME=podman-compose DNS=aardvark-dns
  COMPOSE=("${compose_env[@]}" "$COMPOSE_VENV/bin/podman-compose" -p "$PROJECT" -f compose.yaml)
  has docker || image_checks podman
  compose_checks --no-build
fi

size=$(docker image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $((size / 1000000)) MB ($size bytes)"
echo "image tests: $passed passed, $failed failed"
((failed == 0))
