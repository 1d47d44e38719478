#!/usr/bin/env bash
# What `make test-cluster` needs from the machine, checked before anything
# starts, so a missing piece is named instead of showing up as a hang or a
# crash-looping kubelet. Prints one line per problem; exit 1 if any.
set -uo pipefail

problems=0
missing() {
  echo "preflight: $*" >&2
  problems=$((problems + 1))
}

[[ $(id -u) == 0 ]] || missing "must run as root (it creates network namespaces, cgroups and mounts)"

# Debian packages (.ci/run installs them): what each is for.
declare -A tools=(
  [containerd]="containerd (the node's container runtime)"
  [ctr]="containerd (image import)"
  [runc]="runc"
  [iptables]="iptables (kube-proxy's iptables mode)"
  [conntrack]="conntrack (kube-proxy clears stale UDP entries with it)"
  [ipset]="ipset (kube-router's NetworkPolicy rules)"
  [prometheus]="prometheus (check l scrapes the pods with it)"
  [nsenter]="util-linux"
  [ip]="iproute2"
  [openssl]="openssl (the cluster's certificates)"
  [podman]="podman (builds the images)"
  [curl]="curl"
  [go]="Go 1.25 or later (builds Kubernetes, etcd, CoreDNS, Helm)"
  [python3]="python3"
)
for tool in "${!tools[@]}"; do
  command -v "$tool" >/dev/null || missing "no $tool: install ${tools[$tool]}"
done
for plugin in ptp host-local portmap loopback; do
  [[ -x /usr/lib/cni/$plugin ]] || missing "no CNI plugin /usr/lib/cni/$plugin: install containernetworking-plugins"
done

# Capabilities: CAP_NET_ADMIN (bit 12) and CAP_SYS_ADMIN (bit 21).
capeff=$((16#$(awk '/^CapEff/ {print $2}' /proc/self/status)))
((capeff >> 12 & 1)) || missing "no CAP_NET_ADMIN (network namespaces, routes, iptables)"
((capeff >> 21 & 1)) || missing "no CAP_SYS_ADMIN (mounts, namespaces)"

# Kernel features.
grep -qw overlay /proc/filesystems || missing "no overlay filesystem (containerd's overlayfs snapshotter): modprobe overlay"
for controller in cpu memory pids; do
  if ! grep -qw "$controller" /proc/cgroups; then
    missing "no $controller cgroup controller"
  fi
done
if command -v ip >/dev/null && command -v iptables >/dev/null; then
  scratch=grpc-services-preflight-$$
  if ip netns add "$scratch" 2>/dev/null; then
    inside() { nsenter --net="/run/netns/$scratch" -- "$@"; }
    inside ip link add pf0 type veth peer name pf1 >/dev/null 2>&1 || missing "cannot create veth pairs (CNI ptp needs them)"
    # The rule shapes kube-proxy writes, each needing its own xt match/target.
    for rule in "-t nat -A OUTPUT -m comment --comment x -j RETURN" \
      "-t nat -A OUTPUT -m statistic --mode random --probability 0.5 -j RETURN" \
      "-t nat -A OUTPUT -m addrtype --dst-type LOCAL -j RETURN" \
      "-t nat -A OUTPUT -m mark --mark 0x4000/0x4000 -j RETURN" \
      "-t nat -A POSTROUTING -j MASQUERADE" \
      "-t nat -A OUTPUT -p tcp -d 10.0.0.1 -j DNAT --to-destination 10.0.0.2:80" \
      "-t filter -A INPUT -m conntrack --ctstate INVALID -j DROP" \
      "-t filter -A INPUT -p tcp -m multiport --dports 1,2 -j RETURN" \
      "-t filter -A INPUT -m limit --limit 10/minute -j NFLOG --nflog-group 100" \
      "-t filter -A INPUT -p tcp -j REJECT"; do
      # shellcheck disable=SC2086 # the rule is a list of words
      inside iptables -w 5 $rule >/dev/null 2>&1 || missing "iptables cannot add '$rule' (a kernel module kube-proxy needs)"
    done
    ip netns delete "$scratch"
  else
    missing "cannot create a network namespace (ip netns add)"
  fi
fi

# The cluster's ranges must not be in use on this machine.
for range in 10.213.0.0/16 10.214.0.0/16 10.215.0.0/16; do
  if ip route show to match "${range%/*}" 2>/dev/null | grep -v '^default' | grep -vq '^blackhole'; then
    missing "the machine already routes $range, which the test cluster uses"
  fi
done

# Disk: the binaries, images and containerd's store.
avail_kb=$(df -Pk / | awk 'NR == 2 {print $4}')
((avail_kb > 8 * 1024 * 1024)) || missing "less than 8 GiB free on /"

((problems == 0)) || exit 1
echo "preflight: ok" >&2
