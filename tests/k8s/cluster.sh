#!/usr/bin/env bash
# A throw-away Kubernetes cluster of upstream components (one or two nodes),
# run as plain processes the way the Kubernetes repository's
# hack/local-up-cluster.sh does, but entirely inside network namespaces this
# script creates, one per node:
#
#   node 1 ($NETNS): etcd, kube-apiserver, kube-controller-manager,
#   kube-scheduler, CoreDNS (kubernetes plugin, no forwarding), and the node:
#   kubelet, kube-proxy (iptables mode), containerd + runc + the CNI plugins
#   (ptp, host-local, portmap);
#   node 2 ($NETNS-2, with NODES=2): its own kubelet, kube-proxy and
#   containerd, its own pod range, cgroup root and state folders, joined to
#   node 1 by a veth pair; each node routes the other's pod range via the
#   other's address.
#
# No cluster address exists in the machine's own network namespace: the
# nodes' addresses, the pod and the Service ranges live only inside the node
# namespaces, and blackhole routes for those ranges in the machine's
# namespace are a second guard. Every process that talks to the cluster
# (kubectl, helm, curl, load generators) runs inside $NETNS too
# (`cluster.sh exec CMD...`).
#
#   cluster.sh up      start everything; waits until every node is Ready
#   cluster.sh down    stop everything, unmount, delete the namespaces and state
#   cluster.sh exec    run a command inside node 1's network namespace
#                      (ON_NODE=2: node 2's)
#   cluster.sh import  IMAGE...: put podman images into every node's containerd
#   cluster.sh client NAME USER: a client certificate and $STATE/NAME.kubeconfig
#   cluster.sh add-on NAME CMD...: start an add-on in node 1's namespace
#                      (ON_NODE=2: node 2's), pid kept
#   cluster.sh nodes   the node names, one a line
#   cluster.sh freeze NODE / thaw NODE: SIGSTOP / SIGCONT every process of the
#                      node: kubelet, containerd, its shims, every process of
#                      its pods, kube-proxy and its add-ons
#
# Env: BIN_DIR (where tests/k8s/tools/build.sh put the binaries), TOOLS_BIN
# (coredns, helm, pause), STATE (/var/lib/grpc-services-k8s), NODES (1 or 2,
# for `up`; 1).
set -euo pipefail

NETNS=${NETNS:-grpc-services-k8s}
STATE=${STATE:-/var/lib/grpc-services-k8s}
RUN=/run/grpc-services-k8s # short: unix socket paths are limited to 108 bytes
NODES=${NODES:-1}
NODE_NAME=grpc-services-node
# Private ranges, checked by the preflight against the machine's own routes.
NODE_IP=10.213.0.2
NODE_GATEWAY=10.213.0.1
POD_CIDR=10.214.0.0/16
SERVICE_CIDR=10.215.0.0/24
KUBERNETES_SERVICE_IP=10.215.0.1
CLUSTER_RANGES=(10.213.0.0/16 "$POD_CIDR" 10.215.0.0/16)
CLUSTER_DOMAIN=cluster.local
PAUSE_IMAGE=localhost/pause:test
# Kernel settings the kubelet insists on (it writes them itself otherwise);
# `down` puts back what the machine had.
KUBELET_SYSCTLS=(vm.overcommit_memory=1 vm.panic_on_oom=0 kernel.panic=10 kernel.panic_on_oops=1
  kernel.keys.root_maxkeys=1000000 kernel.keys.root_maxbytes=25000000)

log() { echo "cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}
in_netns() { nsenter --net="/run/netns/$NETNS" -- "$@"; }

# --- nodes -------------------------------------------------------------------------
# Node 1 keeps the single-node names and paths; node N (2) gets its own
# namespace, address, pod range, state folders, sockets and cgroup root.
node_netns() { if (($1 == 1)); then echo "$NETNS"; else echo "$NETNS-$1"; fi; }
node_name() { if (($1 == 1)); then echo "$NODE_NAME"; else echo "$NODE_NAME-$1"; fi; }
node_ip() { echo "10.213.0.$(($1 + 1))"; }
node_pod_range() { echo "10.214.$(($1 - 1)).0/24"; }
node_dir() { if (($1 == 1)); then echo "$STATE"; else echo "$STATE/node-$1"; fi; }
node_run() { if (($1 == 1)); then echo "$RUN"; else echo "$RUN/n$1"; fi; }
node_sock() { echo "$(node_run "$1")/containerd.sock"; }
node_zone() {
  local zones=(- zone-a zone-b)
  echo "${zones[$1]}"
}
# The pid-file suffix of node N's processes: none for node 1.
node_suffix() { if (($1 == 1)); then echo ""; else echo "-$1"; fi; }
# Node 1's kubelet keeps the default cgroup root; a second kubelet on the
# same machine needs one of its own, or both manage the same kubepods tree.
node_cgroup_root() { if (($1 == 1)); then echo "/"; else echo "/$NODE_NAME-$1"; fi; }
# The nodes this cluster has (from the state folders, so `down` finds them
# whatever NODES says).
node_indexes() {
  local dir
  echo 1
  for dir in "$STATE"/node-[0-9]*; do [[ -d $dir ]] && echo "${dir##*-}"; done
  return 0
}
node_index_of() {
  local i
  for i in $(node_indexes); do
    [[ $(node_name "$i") == "$1" ]] && { echo "$i"; return 0; }
  done
  die "no node $1"
}
in_node() {
  local ns
  ns=$(node_netns "$1")
  shift
  nsenter --net="/run/netns/$ns" -- "$@"
}

# --- certificates ------------------------------------------------------------------

# sign NAME SUBJECT [SANS] [EKU]: a key and a certificate signed by the cluster CA.
sign() {
  local name=$1 subject=$2 sans=${3:-} eku=${4:-clientAuth}
  local dir=$STATE/pki
  openssl genrsa -out "$dir/$name.key" 2048 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
}

# kubeconfig NAME: a kubeconfig for the client certificate NAME.
kubeconfig() {
  local name=$1
  cat >"$STATE/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    certificate-authority: $STATE/pki/ca.crt
    server: https://$NODE_IP:6443
users:
- name: $name
  user:
    client-certificate: $STATE/pki/$name.crt
    client-key: $STATE/pki/$name.key
contexts:
- name: local
  context: {cluster: local, user: $name}
current-context: local
EOF
}

make_pki() {
  local dir=$STATE/pki
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -subj "/CN=grpc-services-test-cluster-ca" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  sign apiserver "/CN=kube-apiserver" \
    "IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN" \
    serverAuth
  local i name ip
  for i in $(seq 1 "$NODES"); do
    name=$(node_name "$i") ip=$(node_ip "$i")
    sign "kubelet-serving$(node_suffix "$i")" "/CN=$name" "IP:$ip,DNS:$name" serverAuth
    sign "kubelet$(node_suffix "$i")" "/O=system:nodes/CN=system:node:$name"
    kubeconfig "kubelet$(node_suffix "$i")"
  done
  sign admin "/O=system:masters/CN=kubernetes-admin"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  sign controller-manager "/CN=system:kube-controller-manager"
  sign scheduler "/CN=system:kube-scheduler"
  sign kube-proxy "/CN=system:kube-proxy"
  sign coredns "/CN=grpc-services-test:coredns"
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  for name in admin controller-manager scheduler kube-proxy coredns; do kubeconfig "$name"; done
}

# --- processes ---------------------------------------------------------------------

# start NAME CMD...: runs CMD inside the namespace, logs to logs/NAME.log,
# records its pid for `down`.
start() { start_on 1 "$@"; }
# start_on NODE NAME CMD...: the same in node NODE's namespace.
start_on() {
  local node=$1 name=$2
  shift 2
  # nsenter itself, not a function around it: it execs CMD, so $! is CMD's
  # pid, which down and freeze signal.
  nsenter --net="/run/netns/$(node_netns "$node")" -- "$@" >"$STATE/logs/$name.log" 2>&1 &
  echo "$!" >"$STATE/pids/$name"
}

# wait_for WHAT SECONDS CMD...: polls CMD every half second until it succeeds.
wait_for() {
  local what=$1 seconds=$2 i
  shift 2
  for ((i = 0; i < seconds * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "$what not up within ${seconds}s (logs in $STATE/logs)"
}

alive() { kill -0 "$(cat "$STATE/pids/$1")" 2>/dev/null; }

# write_node_configs NODE: CNI, containerd, kubelet and kube-proxy configs of
# node NODE, under its own folder.
write_node_configs() {
  local i=$1 dir run sfx name ip
  dir=$(node_dir "$i") run=$(node_run "$i") sfx=$(node_suffix "$i") name=$(node_name "$i") ip=$(node_ip "$i")
  mkdir -p "$dir/cni/net.d" "$dir/containerd" "$dir/kubelet" "$dir/pod-logs" "$run"
  # ptp gives each pod a veth pair routed from the node (kind's kindnetd does
  # the same); host-local hands out addresses from one /24.
  cat >"$dir/cni/net.d/10-ptp.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "grpc-services-k8s",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$(node_pod_range "$i")"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$run/containerd"
[grpc]
  address = "$(node_sock "$i")"
[ttrpc]
  address = "$run/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # Built locally and imported: nothing can be pulled here.
  sandbox_image = "$PAUSE_IMAGE"
  # Root here has no CAP_SYS_RESOURCE, so it cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd here: the kubelet uses the cgroupfs driver too.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
  cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$(node_sock "$i")
cgroupDriver: cgroupfs
cgroupRoot: $(node_cgroup_root "$i")
# This machine has the cgroup v1 (hybrid) layout; 1.35 refuses it by default.
failCgroupV1: false
failSwapOn: false
address: $ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $STATE/pki/kubelet-serving$sfx.crt
tlsPrivateKeyFile: $STATE/pki/kubelet-serving$sfx.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$NODE_IP]
resolvConf: $STATE/resolv.conf
podLogsDir: $dir/pod-logs
# Images are imported, not pulled: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOF
  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $name
clusterCIDR: $POD_CIDR
bindAddress: $ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave conntrack sizing and timeouts alone: they are the machine's.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

write_configs() {
  local i
  for i in $(seq 1 "$NODES"); do write_node_configs "$i"; done
  # Pods resolve only through CoreDNS: no outside nameserver.
  : >"$STATE/resolv.conf"
  # The kubernetes plugin answers for the cluster domain; there is no
  # forward block, so no query ever leaves the namespace.
  cat >"$STATE/Corefile" <<EOF
$CLUSTER_DOMAIN:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    errors
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig local
        pods insecure
        ttl 5
    }
    ready 127.0.0.1:8181
}
.:53 {
    bind $NODE_IP
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
}

# The RBAC CoreDNS needs to watch Services and EndpointSlices.
coredns_rbac() {
  cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "grpc-services-test:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "grpc-services-test:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "grpc-services-test:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "grpc-services-test:coredns"}
EOF
}

kubectl_admin() { in_netns "$BIN_DIR/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"; }

up() {
  [[ -x $BIN_DIR/kube-apiserver ]] || die "no binaries in BIN_DIR=$BIN_DIR (tests/k8s/tools/build.sh)"
  [[ -x $TOOLS_BIN/coredns ]] || die "no coredns in TOOLS_BIN=$TOOLS_BIN"
  [[ $NODES == 1 || $NODES == 2 ]] || die "NODES must be 1 or 2, not $NODES"
  if [[ -e /run/netns/$NETNS || -d $STATE ]]; then
    log "a previous cluster is still here; tearing it down first"
    down
  fi
  mkdir -p "$STATE/logs" "$STATE/pids" "$RUN"
  pod_netns >"$STATE/netns-before"

  # Save the kernel settings the kubelet changes, then set them.
  : >"$STATE/sysctls-before"
  local kv
  for kv in "${KUBELET_SYSCTLS[@]}"; do
    echo "${kv%%=*}=$(sysctl -n "${kv%%=*}")" >>"$STATE/sysctls-before"
    sysctl -q -w "$kv"
  done

  log "network namespace $NETNS: node $NODE_IP, pods $POD_CIDR, services $SERVICE_CIDR"
  ip netns add "$NETNS"
  for range in "${CLUSTER_RANGES[@]}"; do ip route add blackhole "$range"; done
  in_netns ip link set lo up
  # The node's address sits on one end of a veth pair (this kernel has no
  # dummy links). With one node the other end has no address; with two, it
  # is node 2's link, in node 2's namespace. Some components look for a
  # default route to find "their" address; this one leads nowhere: its
  # gateway never answers ARP, so anything sent there is dropped.
  if ((NODES == 1)); then
    in_netns ip link add node0 type veth peer name node0-end
    in_netns ip link set node0-end up
  else
    ip netns add "$(node_netns 2)"
    mkdir -p "$(node_dir 2)"
    in_node 2 ip link set lo up
    in_netns ip link add node0 type veth peer name node0 netns "$(node_netns 2)"
  fi
  local i j
  for i in $(seq 1 "$NODES"); do
    in_node "$i" ip addr add "$(node_ip "$i")/24" dev node0
    in_node "$i" ip link set node0 up
    in_node "$i" ip route add default via "$NODE_GATEWAY" dev node0
    in_node "$i" sysctl -q -w net.ipv4.ip_forward=1
    # Each node reaches the other's pods through the other node, as a
    # host-gw CNI (or kube-router's routing) sets it up.
    for j in $(seq 1 "$NODES"); do
      ((i == j)) || in_node "$i" ip route add "$(node_pod_range "$j")" via "$(node_ip "$j")" dev node0
    done
  done

  make_pki
  write_configs

  log "etcd"
  start etcd "$BIN_DIR/etcd" --name node --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster node=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
  wait_for etcd 30 in_netns curl -sf http://127.0.0.1:2379/health

  log "kube-apiserver"
  start kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --tls-cert-file="$STATE/pki/apiserver.crt" --tls-private-key-file="$STATE/pki/apiserver.key" \
    --client-ca-file="$STATE/pki/ca.crt" \
    --kubelet-client-certificate="$STATE/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$STATE/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$STATE/pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-key-file="$STATE/pki/sa.pub" \
    --service-account-signing-key-file="$STATE/pki/sa.key" \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --enable-priority-and-fairness=false --profiling=false
  wait_for kube-apiserver 90 kubectl_admin get --raw /readyz

  log "kube-controller-manager, kube-scheduler"
  start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$STATE/pki/sa.key" --root-ca-file="$STATE/pki/ca.crt" \
    --cluster-signing-cert-file="$STATE/pki/ca.crt" --cluster-signing-key-file="$STATE/pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false
  start kube-scheduler "$BIN_DIR/kube-scheduler" \
    --kubeconfig="$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false

  for i in $(seq 1 "$NODES"); do start_node "$i"; done

  log "CoreDNS"
  coredns_rbac | kubectl_admin apply -f - >/dev/null
  start coredns "$TOOLS_BIN/coredns" -conf "$STATE/Corefile"
  wait_for CoreDNS 60 in_netns curl -sf http://127.0.0.1:8181/ready

  for i in $(seq 1 "$NODES"); do
    wait_for "node $(node_name "$i") Ready" 120 kubectl_admin wait --for=condition=Ready "node/$(node_name "$i")" --timeout=2s
  done
  # The default ServiceAccount must exist before pods can be created.
  wait_for "default service account" 60 kubectl_admin -n default get serviceaccount default
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler coredns; do
    alive "$name" || die "$name exited (log: $STATE/logs/$name.log)"
  done
  for i in $(seq 1 "$NODES"); do
    for name in containerd kubelet kube-proxy; do
      alive "$name$(node_suffix "$i")" || die "$name of node $i exited (log: $STATE/logs/$name$(node_suffix "$i").log)"
    done
  done
  log "up: $(kubectl_admin version 2>/dev/null | tr '\n' ' ')"
}

# start_node NODE: the node's containerd (with the pause image), kubelet and
# kube-proxy, in its namespace.
start_node() {
  local i=$1 dir sfx cgroup hierarchy
  dir=$(node_dir "$i") sfx=$(node_suffix "$i") cgroup=$(node_cgroup_root "$i")
  log "node $(node_name "$i") ($(node_ip "$i"), pods $(node_pod_range "$i"), $(node_zone "$i")): containerd, kubelet, kube-proxy"
  if [[ $cgroup != / ]]; then
    # The kubelet wants its cgroup root to exist in every hierarchy; a new
    # cpuset cgroup has no CPUs until given its parent's.
    for hierarchy in /sys/fs/cgroup/*/; do
      [[ $hierarchy == */unified/ || ! -e $hierarchy/cgroup.procs ]] && continue
      mkdir -p "$hierarchy${cgroup#/}"
    done
    if [[ -d /sys/fs/cgroup/cpuset/${cgroup#/} ]]; then
      cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/${cgroup#/}/cpuset.cpus"
      cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/${cgroup#/}/cpuset.mems"
    fi
  fi
  start_on "$i" "containerd$sfx" containerd --config "$dir/containerd/config.toml"
  wait_for "containerd of node $i" 30 ctr --address "$(node_sock "$i")" version
  import_to "$i" "$PAUSE_IMAGE"
  start_on "$i" "kubelet$sfx" "$BIN_DIR/kubelet" --config="$dir/kubelet/config.yaml" \
    --kubeconfig="$STATE/kubelet$sfx.kubeconfig" --root-dir="$dir/kubelet" \
    --hostname-override="$(node_name "$i")" --node-ip="$(node_ip "$i")" \
    --node-labels="topology.kubernetes.io/zone=$(node_zone "$i")"
  start_on "$i" "kube-proxy$sfx" "$BIN_DIR/kube-proxy" --config="$dir/kube-proxy.yaml"
}

# import_to NODE IMAGE...: podman images into the node's containerd, in the
# namespace the CRI uses, unpacked for the snapshotter the CRI uses.
import_to() {
  local node=$1 image
  shift
  for image in "$@"; do
    podman save --format docker-archive "$image" |
      ctr --address "$(node_sock "$node")" -n k8s.io images import --snapshotter overlayfs --no-unpack=false - >/dev/null
  done
}

# import_images IMAGE...: into every node's containerd.
import_images() {
  local i
  for i in $(node_indexes); do import_to "$i" "$@"; done
}

# The network namespaces containerd makes for pods (cni-<uuid>).
pod_netns() {
  local path
  for path in /run/netns/cni-*; do
    [[ -e $path ]] && echo "${path##*/}"
  done
  return 0
}

# stop_pid NAME: SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
  local file=$STATE/pids/$1 pid i
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
  for ((i = 0; i < 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

# Kill every process left in the kubelet's pod cgroups and remove them.
# (A second node's whole cgroup root goes too.)
remove_pod_cgroups() {
  local hierarchy dir
  for hierarchy in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/"$NODE_NAME"-[0-9]*; do
    [[ -d $hierarchy ]] || continue
    find "$hierarchy" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
      kill -9 "$pid" 2>/dev/null || true
    done
  done
  for hierarchy in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/"$NODE_NAME"-[0-9]*; do
    [[ -d $hierarchy ]] || continue
    find "$hierarchy" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# node_pids NODE: every process of node NODE, in the order to stop them: the
# kubelet (so it reacts to nothing), containerd, its shims, every process in
# its pods' cgroups, then kube-proxy and add-ons started on it (kube-router).
node_pids() {
  local i=$1 sfx sock name dir pid cgroup
  sfx=$(node_suffix "$i") sock=$(node_sock "$i") cgroup=$(node_cgroup_root "$i")
  for name in kubelet containerd; do
    [[ -f $STATE/pids/$name$sfx ]] && cat "$STATE/pids/$name$sfx"
  done
  for dir in /proc/[0-9]*; do
    [[ $(cat "$dir/comm" 2>/dev/null) == containerd-shim* ]] || continue
    tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | grep -qF -- "-address $sock " && echo "${dir#/proc/}"
  done
  find "/sys/fs/cgroup/pids${cgroup%/}/kubepods" -name cgroup.procs -exec cat {} + 2>/dev/null
  for name in kube-proxy kube-router; do
    [[ -f $STATE/pids/$name$sfx ]] && cat "$STATE/pids/$name$sfx"
  done
  return 0
}

# freeze NODE_NAME: SIGSTOP every process of the node (kept in
# $STATE/frozen-NODE_NAME for thaw and down). A pod process forked while the
# list was being made is caught by the next pass; a stopped runtime forks
# nothing more.
freeze() {
  local i file pid pass stopped=0
  i=$(node_index_of "$1") file=$STATE/frozen-$1
  : >"$file"
  for ((pass = 0; pass < 5; pass++)); do
    local new=0
    for pid in $(node_pids "$i"); do
      grep -qxF "$pid" "$file" && continue
      kill -STOP "$pid" 2>/dev/null && { echo "$pid" >>"$file"; new=1; stopped=$((stopped + 1)); }
    done
    ((new == 0)) && break
  done
  log "froze node $1: $stopped processes (SIGSTOP)"
}

# thaw NODE_NAME: SIGCONT what freeze stopped, in reverse order.
thaw() {
  local file=$STATE/frozen-$1 pid
  [[ -f $file ]] || return 0
  for pid in $(tac "$file"); do kill -CONT "$pid" 2>/dev/null || true; done
  log "resumed node $1: $(wc -l <"$file") processes (SIGCONT)"
  rm -f "$file"
}

down() {
  local name
  log "tearing down"
  local nodes i file
  nodes=$(node_indexes)
  # A frozen node first gets its processes back, so they can be stopped.
  for file in "$STATE"/frozen-*; do [[ -f $file ]] && thaw "${file##*/frozen-}"; done
  # The kubelets first, so they restart nothing; then every container.
  for i in $nodes; do
    stop_pid "kubelet$(node_suffix "$i")"
    [[ -S $(node_sock "$i") ]] || continue
    local ctr_=(ctr --address "$(node_sock "$i")" -n k8s.io) id
    for id in $("${ctr_[@]}" tasks ls -q 2>/dev/null); do
      "${ctr_[@]}" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $("${ctr_[@]}" tasks ls -q 2>/dev/null); do
      "${ctr_[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
  done
  # Add-ons started later (cert-manager, a policy controller) have pid files too.
  for file in "$STATE"/pids/*; do
    name=${file##*/}
    case $name in
      '*' | kube-apiserver | containerd | containerd-[0-9]* | etcd) ;;
      *) stop_pid "$name" ;;
    esac
  done
  stop_pid kube-apiserver
  for i in $nodes; do stop_pid "containerd$(node_suffix "$i")"; done
  stop_pid etcd
  # Shims outlive containerd; they carry our socket's path in their arguments.
  pkill -9 -f "containerd-shim-runc-v2 .*$RUN" 2>/dev/null || true
  remove_pod_cgroups
  # Mounts under the state folders (pod volumes, rootfs, shm), deepest first.
  awk '{print $2}' /proc/mounts | grep -E "^($STATE|$RUN)/" | sort -r |
    while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
  # Pod network namespaces containerd made for this cluster.
  if [[ -f $STATE/netns-before ]]; then
    for name in $(pod_netns | grep -vxFf "$STATE/netns-before"); do
      ip netns delete "$name" 2>/dev/null || true
    done
  fi
  for i in $nodes; do ip netns delete "$(node_netns "$i")" 2>/dev/null || true; done
  for range in "${CLUSTER_RANGES[@]}"; do ip route del blackhole "$range" 2>/dev/null || true; done
  if [[ -f $STATE/sysctls-before ]]; then
    while read -r kv; do sysctl -q -w "$kv" || true; done <"$STATE/sysctls-before"
  fi
  rm -rf "$STATE" "$RUN"
}

# add_on NAME CMD...: starts an add-on (a policy controller, say) inside the
# namespace of node ON_NODE (1), like the components; `down` stops it by its
# pid file. An add-on of node N>1 is named NAME-N, so freeze finds it.
add_on() {
  local name=$1
  shift
  mkdir -p "$STATE/logs" "$STATE/pids"
  start_on "${ON_NODE:-1}" "$name" "$@"
}

case ${1:-} in
  up) up ;;
  client)
    # client NAME USER: a client certificate for USER and $STATE/NAME.kubeconfig.
    sign "$2" "/CN=$3"
    kubeconfig "$2"
    ;;
  add-on)
    shift
    add_on "$@"
    ;;
  down) down ;;
  exec)
    shift
    in_node "${ON_NODE:-1}" "$@"
    ;;
  nodes) for i in $(node_indexes); do node_name "$i"; done ;;
  freeze) freeze "${2:?node name}" ;;
  thaw) thaw "${2:?node name}" ;;
  import)
    shift
    import_images "$@"
    ;;
  *) die "usage: $0 up|down|exec CMD...|import IMAGE...|client NAME USER|add-on NAME CMD...|nodes|freeze NODE|thaw NODE" ;;
esac
