#!/usr/bin/env bash
# A throw-away single-node Kubernetes cluster of upstream components, run as
# plain processes the way the Kubernetes repository's
# hack/local-up-cluster.sh does, but entirely inside a network namespace
# this script creates:
#
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#   kube-proxy (iptables mode), CoreDNS (kubernetes plugin, no forwarding),
#   containerd + runc + the CNI plugins (ptp, host-local, portmap).
#
# No cluster address exists in the machine's own network namespace: the
# node's address, the pod and the Service ranges live only inside $NETNS,
# and blackhole routes for those ranges in the machine's namespace are a
# second guard. Every process that talks to the cluster (kubectl, helm,
# curl, load generators) runs inside $NETNS too (`cluster.sh exec CMD...`).
#
#   cluster.sh up      start everything; waits until the node is Ready
#   cluster.sh down    stop everything, unmount, delete the namespace and state
#   cluster.sh exec    run a command inside the cluster's network namespace
#   cluster.sh import  IMAGE...: put podman images into the node's containerd
#   cluster.sh client NAME USER: a client certificate and $STATE/NAME.kubeconfig
#   cluster.sh add-on NAME CMD...: start an add-on in the namespace (pid kept)
#
# Env: BIN_DIR (where tests/k8s/tools/build.sh put the binaries), TOOLS_BIN
# (coredns, helm, pause), STATE (/var/lib/grpc-services-k8s).
set -euo pipefail

NETNS=${NETNS:-grpc-services-k8s}
STATE=${STATE:-/var/lib/grpc-services-k8s}
RUN=/run/grpc-services-k8s # short: unix socket paths are limited to 108 bytes
NODE_NAME=grpc-services-node
# Private ranges, checked by the preflight against the machine's own routes.
NODE_IP=10.213.0.2
NODE_GATEWAY=10.213.0.1
POD_CIDR=10.214.0.0/16
POD_RANGE=10.214.0.0/24
SERVICE_CIDR=10.215.0.0/24
KUBERNETES_SERVICE_IP=10.215.0.1
CLUSTER_RANGES=(10.213.0.0/16 "$POD_CIDR" 10.215.0.0/16)
CLUSTER_DOMAIN=cluster.local
PAUSE_IMAGE=localhost/pause:test
CONTAINERD_SOCK=$RUN/containerd.sock
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
  sign kubelet-serving "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME" serverAuth
  sign admin "/O=system:masters/CN=kubernetes-admin"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  sign controller-manager "/CN=system:kube-controller-manager"
  sign scheduler "/CN=system:kube-scheduler"
  sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  sign kube-proxy "/CN=system:kube-proxy"
  sign coredns "/CN=grpc-services-test:coredns"
  # The aggregation layer (metrics-server's metrics.k8s.io, the add-on
  # checks): the API server proxies to an extension API server with this
  # client certificate, from a CA of its own as kubeadm's front-proxy-ca,
  # so no other client certificate of the cluster can claim to be the proxy.
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/front-proxy-ca.key" -out "$dir/front-proxy-ca.crt" \
    -subj "/CN=grpc-services-test-front-proxy-ca" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/front-proxy-client.key" -subj /CN=front-proxy-client \
    -out "$dir/front-proxy-client.csr" 2>/dev/null
  openssl x509 -req -in "$dir/front-proxy-client.csr" -CA "$dir/front-proxy-ca.crt" -CAkey "$dir/front-proxy-ca.key" \
    -CAcreateserial -days 2 -out "$dir/front-proxy-client.crt" \
    -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n') 2>/dev/null
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  for name in admin controller-manager scheduler kubelet kube-proxy coredns; do kubeconfig "$name"; done
}

# --- processes ---------------------------------------------------------------------

# start NAME CMD...: runs CMD inside the namespace, logs to logs/NAME.log,
# records its pid for `down`.
start() {
  local name=$1
  shift
  nsenter --net="/run/netns/$NETNS" -- "$@" >"$STATE/logs/$name.log" 2>&1 &
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

write_configs() {
  mkdir -p "$STATE/cni/net.d" "$STATE/containerd" "$STATE/kubelet" "$STATE/pod-logs" "$RUN"
  # ptp gives each pod a veth pair routed from the node (kind's kindnetd does
  # the same); host-local hands out addresses from one /24.
  cat >"$STATE/cni/net.d/10-ptp.conflist" <<EOF
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
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_RANGE"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
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
    conf_dir = "$STATE/cni/net.d"
EOF
  # Pods resolve only through CoreDNS: no outside nameserver.
  : >"$STATE/resolv.conf"
  cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
# This machine has the cgroup v1 (hybrid) layout; 1.35 refuses it by default.
failCgroupV1: false
failSwapOn: false
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $STATE/pki/kubelet-serving.crt
tlsPrivateKeyFile: $STATE/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$NODE_IP]
resolvConf: $STATE/resolv.conf
podLogsDir: $STATE/pod-logs
# Images are imported, not pulled: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOF
  cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave conntrack sizing and timeouts alone: they are the machine's.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
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
  # The node's address sits on one end of a veth pair whose other end has
  # none (this kernel has no dummy links). Some components look for a default
  # route to find "their" address; this one leads nowhere: its gateway never
  # answers ARP, so anything sent there is dropped.
  in_netns ip link add node0 type veth peer name node0-end
  in_netns ip addr add "$NODE_IP/24" dev node0
  in_netns ip link set node0-end up
  in_netns ip link set node0 up
  in_netns ip route add default via "$NODE_GATEWAY" dev node0
  in_netns sysctl -q -w net.ipv4.ip_forward=1

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
    --enable-priority-and-fairness=false --profiling=false \
    --requestheader-client-ca-file="$STATE/pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$STATE/pki/front-proxy-client.crt" \
    --proxy-client-key-file="$STATE/pki/front-proxy-client.key" \
    --enable-aggregator-routing=true
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

  log "containerd"
  start containerd containerd --config "$STATE/containerd/config.toml"
  wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
  import_images "$PAUSE_IMAGE"

  log "kubelet"
  start kubelet "$BIN_DIR/kubelet" --config="$STATE/kubelet/config.yaml" \
    --kubeconfig="$STATE/kubelet.kubeconfig" --root-dir="$STATE/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
  log "kube-proxy"
  start kube-proxy "$BIN_DIR/kube-proxy" --config="$STATE/kube-proxy.yaml"

  log "CoreDNS"
  coredns_rbac | kubectl_admin apply -f - >/dev/null
  start coredns "$TOOLS_BIN/coredns" -conf "$STATE/Corefile"
  wait_for CoreDNS 60 in_netns curl -sf http://127.0.0.1:8181/ready

  wait_for "node $NODE_NAME Ready" 120 kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  # The default ServiceAccount must exist before pods can be created.
  wait_for "default service account" 60 kubectl_admin -n default get serviceaccount default
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns; do
    alive "$name" || die "$name exited (log: $STATE/logs/$name.log)"
  done
  log "up: $(kubectl_admin version 2>/dev/null | tr '\n' ' ')"
}

# import_images IMAGE...: podman images into the node's containerd, in the
# namespace the CRI uses, unpacked for the snapshotter the CRI uses.
import_images() {
  local image
  for image in "$@"; do
    podman save --format docker-archive "$image" |
      ctr --address "$CONTAINERD_SOCK" -n k8s.io images import --snapshotter overlayfs --no-unpack=false - >/dev/null
  done
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
remove_pod_cgroups() {
  local hierarchy dir
  for hierarchy in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $hierarchy ]] || continue
    find "$hierarchy" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
      kill -9 "$pid" 2>/dev/null || true
    done
  done
  for hierarchy in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $hierarchy ]] || continue
    find "$hierarchy" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

down() {
  local name
  log "tearing down"
  # The kubelet first, so it restarts nothing; then every container.
  stop_pid kubelet
  if [[ -S $CONTAINERD_SOCK ]]; then
    local ctr_=(ctr --address "$CONTAINERD_SOCK" -n k8s.io) id
    for id in $("${ctr_[@]}" tasks ls -q 2>/dev/null); do
      "${ctr_[@]}" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $("${ctr_[@]}" tasks ls -q 2>/dev/null); do
      "${ctr_[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
  fi
  # Add-ons started later (cert-manager, a policy controller) have pid files too.
  for file in "$STATE"/pids/*; do
    name=${file##*/}
    case $name in
      '*' | kube-apiserver | containerd | etcd) ;;
      *) stop_pid "$name" ;;
    esac
  done
  for name in kube-apiserver containerd etcd; do
    stop_pid "$name"
  done
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
  ip netns delete "$NETNS" 2>/dev/null || true
  for range in "${CLUSTER_RANGES[@]}"; do ip route del blackhole "$range" 2>/dev/null || true; done
  if [[ -f $STATE/sysctls-before ]]; then
    while read -r kv; do sysctl -q -w "$kv" || true; done <"$STATE/sysctls-before"
  fi
  rm -rf "$STATE" "$RUN"
}

# add_on NAME CMD...: starts an add-on (a policy controller, say) inside the
# namespace, like the components; `down` stops it by its pid file.
add_on() {
  local name=$1
  shift
  mkdir -p "$STATE/logs" "$STATE/pids"
  start "$name" "$@"
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
    in_netns "$@"
    ;;
  import)
    shift
    import_images "$@"
    ;;
  *) die "usage: $0 up|down|exec CMD...|import IMAGE...|client NAME USER|add-on NAME CMD..." ;;
esac
