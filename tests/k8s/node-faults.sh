#!/usr/bin/env bash
# Faults injected into one pod from its node, for the gray-failure checks;
# runs where node_sh runs (the node: host PIDs and the pod's network
# namespace are reachable), as root.
#
#   node-faults.sh freeze POD_UID SECONDS   SIGSTOP the pod's service1 process,
#                                           SIGCONT it SECONDS later
#   node-faults.sh drop POD_UID SECONDS     drop every packet in and out of the
#                                           pod's network namespace (iptables),
#                                           for SECONDS
#
# Prints what it did. The fault is undone on exit, also on failure.
set -euo pipefail

mode=${1:?mode} uid=${2:?pod uid} seconds=${3:?seconds}

# The host PID of the pod's service1 process: its cgroup path names the pod's
# UID (with '_' for '-' under the systemd cgroup driver).
pid=
for dir in /proc/[0-9]*; do
  [[ $(cat "$dir/comm" 2>/dev/null) == service1 ]] || continue
  if grep -qE "pod(${uid}|${uid//-/_})" "$dir/cgroup" 2>/dev/null; then
    pid=${dir#/proc/}
    break
  fi
done
[[ -n $pid ]] || {
  echo "no service1 process of pod $uid on this node" >&2
  exit 1
}

case $mode in
  freeze)
    trap 'kill -CONT "$pid" 2>/dev/null || true' EXIT
    kill -STOP "$pid"
    echo "froze PID $pid (pod $uid) for $seconds s"
    sleep "$seconds"
    ;;
  drop)
    rules=(INPUT OUTPUT)
    # The namespace, held open: should the kubelet restart the container
    # meanwhile, its PID is gone but the pod's namespace (and the rules in
    # it) is not, and the rules must still come out.
    exec {netns}<"/proc/$pid/ns/net"
    in_netns() { nsenter --net="/proc/self/fd/$netns" "$@"; }
    undo() {
      for chain in "${rules[@]}"; do
        in_netns iptables -w -D "$chain" -j DROP 2>/dev/null || true
      done
    }
    trap undo EXIT
    for chain in "${rules[@]}"; do
      in_netns iptables -w -I "$chain" 1 -j DROP
    done
    echo "dropping every packet of pod $uid (PID $pid's network namespace) for $seconds s"
    sleep "$seconds"
    ;;
  *)
    echo "usage: node-faults.sh freeze|drop POD_UID SECONDS" >&2
    exit 2
    ;;
esac
