# shellcheck shell=bash
# Check j: NetworkPolicy enforced for real, by kube-router's network policy
# controller (github.com/cloudnativelabs/kube-router/v2, built from its module
# in tests/k8s/tools/kube-router) run as a host process inside the cluster's
# network namespace with only the firewall on. It writes iptables rules and
# ipsets in that namespace, which is where our ptp CNI routes every pod's
# traffic (FORWARD for pod to pod, OUTPUT for the node to a pod).
#
# Why not sigs.k8s.io/kube-network-policies: it sends packets to user space
# with the nftables `queue` statement, and this kernel has no nft_queue
# (CONFIG_NFT_QUEUE unset): `nft add rule ... queue num 100` fails with
# "Error: Could not process rule: No such file or directory".
#
# Needs Debian's `ipset` (kube-router runs the ipset program) besides
# iptables; podman to build the probe image.
#
# Source it in tests/k8s/run.sh after checks.sh, with STATE exported,
# KUBE_ROUTER_BIN and TCP_PROBE_BIN set to the build folders, then:
#
#   network_policy_start   RBAC, the probe image, kube-router (pid in
#                          $STATE/pids/kube-router, log in
#                          $STATE/logs/kube-router.log)
#   run_check "j. ..." check_network_policy

NETWORK_POLICY_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBE_ROUTER_BIN=${KUBE_ROUTER_BIN:-${bin_kube_router:-}}
TCP_PROBE_BIN=${TCP_PROBE_BIN:-${bin_tcp_probe:-}}
TCP_PROBE_IMAGE=localhost/tcp-probe:test
KUBE_ROUTER_USER=grpc-services-test:kube-router
# The cluster's Service range (cluster.sh SERVICE_CIDR).
KUBE_ROUTER_SERVICE_CIDR=10.215.0.0/24

# The RBAC of kube-router's own manifests (daemonset/generic-kuberouter.yaml),
# reduced to what the firewall reads: it builds informers for all of these.
kube_router_rbac() {
  cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "$KUBE_ROUTER_USER"}
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "$KUBE_ROUTER_USER"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "$KUBE_ROUTER_USER"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "$KUBE_ROUTER_USER"}
EOF
}

network_policy_start() {
  local ctx i
  [[ -x $KUBE_ROUTER_BIN/kube-router ]] || {
    echo "no kube-router in KUBE_ROUTER_BIN=$KUBE_ROUTER_BIN (tests/k8s/tools/build.sh)" >&2
    return 1
  }
  command -v ipset >/dev/null || {
    echo "kube-router needs the ipset program: apt-get install ipset" >&2
    return 1
  }
  # The probe's image, FROM scratch like the pause image, into the node's containerd.
  ctx=$(mktemp -d)
  cp "$TCP_PROBE_BIN/tcp-probe" "$NETWORK_POLICY_SH_DIR/tools/tcp-probe/Containerfile" "$ctx/"
  podman build -q -t "$TCP_PROBE_IMAGE" "$ctx" >/dev/null || return 1
  rm -rf "$ctx"
  "$NETWORK_POLICY_SH_DIR/cluster.sh" import "$TCP_PROBE_IMAGE" || return 1
  kube_router_rbac | kubectl apply -f - >/dev/null || return 1
  "$NETWORK_POLICY_SH_DIR/cluster.sh" client kube-router "$KUBE_ROUTER_USER" || return 1
  kubectl --kubeconfig "$STATE/kube-router.kubeconfig" get -A \
    nodes,namespaces,pods,services,endpoints,endpointslices,networkpolicies >/dev/null || return 1
  # One per node, in the node's namespace, as its DaemonSet would run: each
  # polices the pods of its own node. Only the firewall: no BGP routing (the
  # nodes route pod ranges already), no IPVS proxy (kube-proxy is the
  # proxy). No podCIDR is needed: the firewall knows pods by their IPs
  # (pod.status.podIPs) and which are local by pod.status.hostIP == the
  # node's InternalIP.
  local n=0 node name
  for node in $("$NETWORK_POLICY_SH_DIR/cluster.sh" nodes); do
    n=$((n + 1)) name=kube-router
    ((n == 1)) || name=kube-router-$n
    ON_NODE=$n "$NETWORK_POLICY_SH_DIR/cluster.sh" add-on "$name" "$KUBE_ROUTER_BIN/kube-router" \
      --kubeconfig="$STATE/kube-router.kubeconfig" \
      --run-firewall=true --run-router=false --run-service-proxy=false \
      --hostname-override="$node" \
      --service-cluster-ip-range="$KUBE_ROUTER_SERVICE_CIDR" \
      --enable-ipv4=true --enable-ipv6=false \
      --health-port=20244 --metrics-port=0 || return 1
    for ((i = 0; i < 120; i++)); do
      if ON_NODE=$n "$NETWORK_POLICY_SH_DIR/cluster.sh" exec curl -sf http://127.0.0.1:20244/healthz >/dev/null 2>&1 &&
        ON_NODE=$n "$NETWORK_POLICY_SH_DIR/cluster.sh" exec iptables -S KUBE-ROUTER-FORWARD >/dev/null 2>&1; then
        continue 2
      fi
      kill -0 "$(cat "$STATE/pids/$name")" 2>/dev/null || break
      sleep 0.5
    done
    echo "kube-router on $node is not up (log: $STATE/logs/$name.log):" >&2
    tail -5 "$STATE/logs/$name.log" >&2
    return 1
  done
}

# node_index NODE_NAME: its position in `cluster.sh nodes` (ON_NODE).
node_index() { "$NETWORK_POLICY_SH_DIR/cluster.sh" nodes | grep -nxF "$1" | cut -d: -f1; }

# on_every_node CMD...: CMD in each node's namespace, outputs concatenated.
on_every_node() {
  local n
  for ((n = 1; n <= $("$NETWORK_POLICY_SH_DIR/cluster.sh" nodes | grep -c .); n++)); do
    ON_NODE=$n "$NETWORK_POLICY_SH_DIR/cluster.sh" exec "$@"
  done
}

# --- j. NetworkPolicy ----------------------------------------------------------------

# probe NAMESPACE NAME ADDR...: a tcp-probe pod (labels of no service) that
# tries a TCP connect to each ADDR; prints its "ADDR open|closed (...)" lines.
probe() {
  local ns=$1 name=$2 args
  shift 2
  args=$(printf '"%s",' -retry 15s "$@")
  kubectl -n "$ns" delete pod "$name" --ignore-not-found --wait=true >/dev/null 2>&1
  kubectl apply -f - >/dev/null <<EOF || return 1
apiVersion: v1
kind: Pod
metadata:
  name: $name
  namespace: $ns
  labels: {app.kubernetes.io/name: tcp-probe}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: probe
    image: $TCP_PROBE_IMAGE
    imagePullPolicy: Never
    args: [${args%,}]
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
EOF
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded "pod/$name" --timeout 90s >/dev/null || {
    echo "probe pod $name: $(kubectl -n "$ns" get pod "$name" -o jsonpath='{.status.phase}')"
    return 1
  }
  kubectl -n "$ns" logs "$name"
  kubectl -n "$ns" delete pod "$name" --wait=false >/dev/null 2>&1
}

# policy_programmed NAMESPACE POLICY: kube-router has rules for POLICY on
# every node (its comments name the policy and its namespace).
policy_programmed() {
  local n
  for ((n = 1; n <= $("$NETWORK_POLICY_SH_DIR/cluster.sh" nodes | grep -c .); n++)); do
    ON_NODE=$n "$NETWORK_POLICY_SH_DIR/cluster.sh" exec iptables-save -t filter |
      grep -F "policy name $2 namespace $1" >/dev/null || return 1
  done
}

# check_network_policy: a release in its own namespace. Without policies a
# tcp-probe pod in that namespace opens service1's gRPC port (the baseline);
# after `helm upgrade --set networkPolicy.enabled=true` the same probe cannot
# open it but still opens service1's admin port (allowed from any pod: the
# probe's network works), and say-hello through service2 (allowed to service1's
# gRPC port) has no failed call.
# shellcheck disable=SC2153 # NAMESPACE comes from the runner
check_network_policy() {
  local release=np namespace=$NAMESPACE-netpol status=0 targets=() ip out url i
  if ! helm_install "$release" "$namespace" --set networkPolicy.enabled=false \
    --set service1.replicas=2,service2.replicas=1 >/dev/null; then
    echo "helm install failed"
    status=1
  fi
  if ((status == 0)); then
    for ip in $(kubectl -n "$namespace" get pods -l "$(s1_selector "$release")" -o jsonpath='{.items[*].status.podIP}'); do
      targets+=("$ip:50051" "$ip:9080")
    done
    out=$(probe "$namespace" tcp-probe-before "${targets[@]}") || status=1
    echo "without NetworkPolicy: $(tr '\n' ';' <<<"$out")"
    # Baseline: every port opens, so a closed port below is the policy's doing.
    [[ -n $out && $(grep -c ' open$' <<<"$out") == "${#targets[@]}" ]] || status=1
  fi
  if ((status == 0)); then
    helm_install "$release" "$namespace" --reuse-values --set networkPolicy.enabled=true >/dev/null || status=1
    for ((i = 0; i < 60; i++)); do
      policy_programmed "$namespace" "$release-service1" && break
      sleep 0.5
    done
    echo "kube-router programmed $release-service1 after $((i / 2))s"
    out=$(probe "$namespace" tcp-probe-after "${targets[@]}") || status=1
    echo "with NetworkPolicy: $(tr '\n' ';' <<<"$out")"
    for ip in "${targets[@]}"; do
      case $ip in
        *:50051) grep -qxF "$ip open" <<<"$out" && status=1 ;;
        *:9080) grep -qxF "$ip open" <<<"$out" || status=1 ;;
      esac
    done
    grep -q ':50051 closed' <<<"$out" || status=1
    url=$(service_url "$namespace" "$release-service2" /api/v1/say-hello?name=netpol)
    out=$(node_sh "$CHECKS_DIR/load.sh" calls "$url" netpol 20)
    echo "say-hello through service2 with NetworkPolicy: $out"
    [[ $out == "sent 20 failed 0" ]] || status=1
  fi
  if ((status != 0)); then
    kubectl -n "$namespace" get networkpolicies,pods -o wide 2>&1 | tail -8
    tail -5 "$STATE"/logs/kube-router*.log
  fi
  helm uninstall "$release" --namespace "$namespace" --wait >/dev/null 2>&1 || true
  kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  return $status
}

# --- k. NetworkPolicy knobs: extra gRPC clients, egress --------------------------------

# check_network_policy_knobs: a release installed with the policies on,
# service1GrpcFrom naming the tcp-probe pods, and egress on with DNS allowed
# to the node (where this cluster's CoreDNS runs, outside the pod network).
# Once kube-router has programmed the policies, service2 is restarted, so it
# must resolve service1 and connect to it under the egress policy: it turns
# Ready, say-hello has no failed call, and the probe (an extra client) opens
# service1's gRPC port. There is no negative control for DNS: here CoreDNS
# runs on the node, and kube-router does not filter a pod's traffic to its
# own node, so blocking DNS by policy cannot be shown on this cluster (a
# first version of this check found service2 still resolving).
check_network_policy_knobs() {
  local release=npk namespace=$NAMESPACE-netpol-knobs status=0 node_ip ip out url i
  # CoreDNS runs on the first node's address.
  node_ip=$(kubectl get node "$("$NETWORK_POLICY_SH_DIR/cluster.sh" nodes | head -1)" \
    -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
  if ! helm_install "$release" "$namespace" --set service1.replicas=1,service2.replicas=1 \
    --set networkPolicy.enabled=true,networkPolicy.egress.enabled=true \
    --set-json "networkPolicy.egress.dnsTo=[{\"ipBlock\":{\"cidr\":\"$node_ip/32\"}}]" \
    --set-json 'networkPolicy.service1GrpcFrom=[{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"tcp-probe"}}}]' \
    >/dev/null; then
    echo "helm install failed"
    status=1
  fi
  if ((status == 0)); then
    for ((i = 0; i < 60; i++)); do
      policy_programmed "$namespace" "$release-service2" && policy_programmed "$namespace" "$release-service1" && break
      sleep 0.5
    done
    echo "kube-router programmed both policies after $((i / 2))s"
    kubectl -n "$namespace" rollout restart "deploy/$release-service2" >/dev/null &&
      kubectl -n "$namespace" rollout status "deploy/$release-service2" --timeout 90s >/dev/null || status=1
    echo "service2 restarted under the egress policy: $( ((status == 0)) && echo Ready || echo 'not Ready')"
    url=$(service_url "$namespace" "$release-service2" /api/v1/say-hello?name=egress)
    out=$(node_sh "$CHECKS_DIR/load.sh" calls "$url" egress 20)
    echo "say-hello with egress rules: $out"
    [[ $out == "sent 20 failed 0" ]] || status=1
    ip=$(kubectl -n "$namespace" get pods -l "$(s1_selector "$release")" -o jsonpath='{.items[0].status.podIP}')
    out=$(probe "$namespace" tcp-probe-extra-client "$ip:50051") || status=1
    echo "a pod listed in service1GrpcFrom: $out"
    grep -qxF "$ip:50051 open" <<<"$out" || status=1
  fi
  if ((status != 0)); then
    kubectl -n "$namespace" get networkpolicies,pods -o wide 2>&1 | tail -8
    tail -5 "$STATE"/logs/kube-router*.log
  fi
  helm uninstall "$release" --namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  return $status
}

# --- w. NetworkPolicy egress, the negative control ------------------------------------

# egress_rules NAMESPACE POD NODE POLICY: how kube-router on NODE treats
# POD's own traffic: "default" while no egress policy selects the pod (its
# firewall chain sends traffic from the pod's IP to the default chain, which
# accepts), "POLICY" once POLICY's chain applies to it in both directions
# (no -s/-d: an Ingress and Egress policy), "none" before either.
egress_rules() {
  local ip rules
  ip=$(kubectl -n "$1" get pod "$2" -o jsonpath='{.status.podIP}')
  rules=$(ON_NODE=$(node_index "$3") "$NETWORK_POLICY_SH_DIR/cluster.sh" exec iptables-save -t filter)
  if grep -F -- "-s $ip/32 " <<<"$rules" | grep -qF '"run through default egress network policy chain"'; then
    echo default
  elif grep -F '"run through nw policy '"$4"'"' <<<"$rules" | grep -qvE -- "-[sd] $ip/32 "; then
    echo "$4"
  else
    echo none
  fi
}

# from_pod NAMESPACE POD ADDR PORT: "open" or "closed": a TCP connect from
# inside POD's network namespace (entered from the node through the pod's
# pause process; the image has no shell), 3 s at most.
from_pod() {
  local uid pid dir
  uid=$(kubectl -n "$1" get pod "$2" -o jsonpath='{.metadata.uid}')
  for dir in /proc/[0-9]*; do
    grep -qE "pod(${uid}|${uid//-/_})" "$dir/cgroup" 2>/dev/null && { pid=${dir#/proc/}; break; }
  done
  # "closed" must mean the connection, not a namespace that was not there.
  [[ -n $pid && -e /proc/$pid/ns/net ]] || { echo "no process of pod $2"; return 1; }
  if nsenter --net="/proc/$pid/ns/net" timeout 3 bash -c "exec 3<>/dev/tcp/$3/$4" 2>/dev/null; then
    echo open
  else
    echo closed
  fi
}

# check_network_policy_egress: check k passes whether or not egress rules are
# applied, so here is a connection they must refuse. A release with the
# policies on: from a service2 pod to service1's admin port (service1's
# ingress admits any pod there) opens with egress off; with egress on
# (service2 may reach only DNS and service1's gRPC port) and kube-router's
# rules on that pod's node applying the policy to its egress, it must not.
# Fails if kube-router never applies them.
check_network_policy_egress() {
  local release=npe namespace=$NAMESPACE-netpol-egress status=0 s2 node target out i
  helm_install "$release" "$namespace" --set service1.replicas=1,service2.replicas=1 \
    --set networkPolicy.enabled=true,networkPolicy.egress.enabled=false >/dev/null || { echo "helm install failed"; return 1; }
  read -r s2 node < <(kubectl -n "$namespace" get pods -l "$(s2_selector "$release")" \
    -o jsonpath='{.items[0].metadata.name}{" "}{.items[0].spec.nodeName}')
  target=$(kubectl -n "$namespace" get pods -l "$(s1_selector "$release")" -o jsonpath='{.items[0].status.podIP}'):9080
  for ((i = 0; i < 10; i++)); do
    out=$(from_pod "$namespace" "$s2" "${target%:*}" "${target#*:}")
    [[ $out == open ]] && break
    sleep 0.5
  done
  echo "egress off: service2 pod $s2 ($node) to service1's admin port $target: $out (kube-router: $(egress_rules "$namespace" "$s2" "$node" "$release-service2") egress rules)"
  [[ $out == open ]] || status=1
  if ((status == 0)); then
    helm_install "$release" "$namespace" --reuse-values --set networkPolicy.egress.enabled=true >/dev/null || status=1
    read -r s2 node < <(kubectl -n "$namespace" get pods -l "$(s2_selector "$release")" \
      -o jsonpath='{.items[0].metadata.name}{" "}{.items[0].spec.nodeName}')
    for ((i = 0; i < 120; i++)); do
      [[ $(egress_rules "$namespace" "$s2" "$node" "$release-service2") == "$release-service2" ]] && break
      sleep 0.5
    done
    if ((i == 120)); then
      echo "kube-router never programmed egress rules for $s2 on $node (60 s)"
      status=1
    else
      echo "kube-router applies $release-service2 to $s2's egress after $((i / 2))s"
      out=$(from_pod "$namespace" "$s2" "${target%:*}" "${target#*:}")
      echo "egress on: the same connection: $out"
      [[ $out == closed ]] || status=1
    fi
  fi
  if ((status != 0)); then
    kubectl -n "$namespace" get networkpolicies,pods -o wide 2>&1 | tail -8
  fi
  helm uninstall "$release" --namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  return $status
}
