#!/usr/bin/env bash
# A private Docker engine for `make test-image`: Debian's dockerd (docker.io)
# with its own containerd, data-root, exec-root, socket and bridge, so it
# collides neither with a system Docker nor with another containerd on the
# machine (e.g. a kubelet's), and leaves nothing running or configured behind.
#
#   scripts/private-dockerd.sh start   # prints DOCKER_HOST=unix://...
#   scripts/private-dockerd.sh stop    # stops both daemons, removes the bridge
#   scripts/private-dockerd.sh env     # prints DOCKER_HOST=... (running or not)
#
# State: target/docker-engine (images, build cache; kept between runs, so a
# second run is warm) and /run/grpc-services-dockerd-HASH (sockets, pid
# files, logs; HASH from this checkout's path, so two checkouts can each run
# one). Needs root. `start` stops a daemon left by an interrupted run first.
#
# Settings, and why (checked on our CI VMs: Debian 12, docker.io 20.10,
# containerd 1.6, runc 1.1, no CAP_SYS_RESOURCE, hybrid cgroup v1 layout):
#  - Our own containerd, passed with --containerd: dockerd 20.10 given none
#    connects to /run/containerd/containerd.sock whenever that socket exists
#    (another engineer's or a kubelet's containerd) and would share it.
#  - runc and the cgroupfs driver, dockerd's defaults (Debian's docker.io
#    depends on runc), work on the hybrid cgroup v1 layout as they are; runc
#    is named anyway, as a machine-wide /etc/docker is not read here. (podman
#    needs it set because Debian's podman may pick crun, which refuses this
#    layout.)
#  - default-ulimits nofile = this shell's hard limit: root here lacks
#    CAP_SYS_RESOURCE, so no container may ask for more than the hard limit
#    (20000; podman's default 1048576 fails every container). dockerd sets
#    no limit of its own, so without this the containers inherit whatever
#    soft limit the caller had (1024 in many shells).
#  - Our own bridge (gstdocker0, 172.31.255.1/24, made here and deleted on
#    stop) instead of docker0, and networks from 172.30.0.0/16 only: a system
#    Docker's docker0 is left alone, and both ranges are far from the
#    Kubernetes defaults (10.96.0.0/12, 10.244.0.0/16).
#  - iptables stays on: containers reach crates.io (the build's `cargo chef
#    cook`, the certs step) through its MASQUERADE rule, and the compose
#    network's isolation rules come from it. ip-forward off: dockerd 20.10,
#    when it turns net.ipv4.ip_forward on itself, also sets the FORWARD
#    policy to DROP for the whole machine; we turn forwarding on (as podman's
#    netavark does) and the policy stays as it was. On stop, the DOCKER*
#    chains and the jumps to them are removed unless another dockerd runs.
#  - "ip": "127.0.0.1": a port published without an address binds loopback
#    only (compose.yaml already names 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=${DOCKER_ENGINE_DATA:-$PWD/target/docker-engine}
RUN_DIR=/run/grpc-services-dockerd-$(printf '%s' "$PWD" | cksum | cut -d' ' -f1)
SOCK=$RUN_DIR/docker.sock
CTRD_SOCK=$RUN_DIR/containerd/containerd.sock
BRIDGE=gstdocker0
BRIDGE_CIDR=172.31.255.1/24
POOL=172.30.0.0/16

log() { echo "private-dockerd: $*" >&2; }

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() { # PIDFILE NAME SECONDS: SIGTERM, wait, then SIGKILL
  local pidfile=$1 name=$2 deadline=$((SECONDS + $3)) pid
  alive "$pidfile" || {
    rm -f "$pidfile"
    return 0
  }
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name ($pid) still running after $3 s: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline + 10)); do sleep 0.2; done
  fi
  rm -f "$pidfile"
}

remove_iptables_rules() {
  # Another dockerd uses the same chains: leave them.
  local other
  other=$(pgrep -x dockerd || true)
  if [[ -n $other ]]; then
    log "another dockerd runs ($other): leaving the DOCKER iptables chains"
    return
  fi
  local table rule chain
  for table in filter nat; do
    # Rules in the built-in chains that jump to Docker's chains or name our
    # bridge or ranges, then Docker's chains themselves.
    iptables -t "$table" -S 2>/dev/null |
      grep -E '^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) ' |
      grep -E -e '-j DOCKER' -e "$BRIDGE" -e '172\.3[01]\.' |
      while read -r rule; do
        # shellcheck disable=SC2086 # the rule is a list of arguments
        iptables -t "$table" ${rule/#-A/-D} 2>/dev/null || true
      done || true # no such rule: grep exits 1
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }'); do
      iptables -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }'); do
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

stop() {
  # dockerd stops its containers itself (SIGTERM, then SIGKILL after their
  # stop timeout), then containerd; the runc shims exit with their
  # containers.
  stop_pid "$RUN_DIR/dockerd.pid" dockerd 60
  stop_pid "$RUN_DIR/containerd.pid" containerd 20
  # Mounts an unclean exit can leave behind (overlays, network namespaces).
  local m
  awk -v d="$DATA_DIR/" -v r="$RUN_DIR/" 'index($5, d) == 1 || index($5, r) == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" || true; fi
  remove_iptables_rules
  rm -rf "$RUN_DIR"
}

start() {
  if [[ $EUID -ne 0 ]]; then
    log "needs root"
    exit 1
  fi
  local tool
  for tool in dockerd containerd runc docker iptables; do
    command -v "$tool" >/dev/null || {
      log "$tool not found (Debian: apt-get install docker.io)"
      exit 1
    }
  done
  stop # whatever an interrupted run left
  mkdir -p "$RUN_DIR/containerd" "$DATA_DIR"
  chmod 700 "$RUN_DIR"

  ip link add "$BRIDGE" type bridge
  ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1

  cat >"$RUN_DIR/containerd.toml" <<EOF
version = 2
root = "$DATA_DIR/containerd"
state = "$RUN_DIR/containerd"
# What dockerd's own supervised containerd disables too.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
  local nofile
  nofile=$(ulimit -Hn)
  [[ $nofile == unlimited ]] && nofile=1048576
  cat >"$RUN_DIR/daemon.json" <<EOF
{
  "data-root": "$DATA_DIR/docker",
  "exec-root": "$RUN_DIR/exec",
  "pidfile": "$RUN_DIR/dockerd.pid",
  "hosts": ["unix://$SOCK"],
  "containerd": "$CTRD_SOCK",
  "default-runtime": "runc",
  "default-ulimits": {"nofile": {"Name": "nofile", "Soft": $nofile, "Hard": $nofile}},
  "bridge": "$BRIDGE",
  "default-address-pools": [{"base": "$POOL", "size": 24}],
  "iptables": true,
  "ip-forward": false,
  "ip": "127.0.0.1",
  "features": {"buildkit": true}
}
EOF

  containerd --config "$RUN_DIR/containerd.toml" >"$RUN_DIR/containerd.log" 2>&1 &
  echo $! >"$RUN_DIR/containerd.pid"
  # dockerd retries its connection to containerd, so no wait here; its own
  # readiness (the API answering) covers both.
  dockerd --config-file "$RUN_DIR/daemon.json" >"$RUN_DIR/dockerd.log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 90))
  until docker -H "unix://$SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      log "dockerd did not come up (see below); stopping"
      tail -n 20 "$RUN_DIR/containerd.log" "$RUN_DIR/dockerd.log" >&2 || true
      kill "$pid" 2>/dev/null || true
      stop
      exit 1
    fi
    sleep 0.2
  done
  log "dockerd $(docker -H "unix://$SOCK" version --format '{{.Server.Version}}') up (data $DATA_DIR, logs $RUN_DIR)"
  echo "DOCKER_HOST=unix://$SOCK"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  env) echo "DOCKER_HOST=unix://$SOCK" ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
