# shellcheck shell=bash
# Live checks that need more than one node, and the chart under the rules
# and tools platform teams use: spread across zones, drains through the
# eviction API (one the PodDisruptionBudget allows, one it blocks), a whole
# node frozen, a Pod Security "restricted" namespace, Helm 3 beside Helm 4,
# and an upgrade from the previous chart version. Sourced by the runners
# after checks.sh and gray-failure.sh, whose helpers and variables it uses.
#
# Besides what checks.sh asks of a runner, these use, when defined:
#   node_freeze NODE, node_thaw NODE   stop / resume every process of a node
#                                      (kubelet, runtime, pods); without
#                                      them check s is skipped
#   helm3                              a Helm 3 command; without it check u
#                                      runs Helm 4 only and fails
#
# The node checks (p, q, r, s) need two nodes; with one they are skipped and
# say so.

# pods_on NAMESPACE SELECTOR: "POD NODE IP" for each Running pod.
pods_on() {
  kubectl -n "$1" get pods -l "$2" --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.nodeName}{" "}{.status.podIP}{"\n"}{end}'
}

# per_node LINES: "NODE COUNT, ..." from pods_on's lines.
per_node() { awk 'NF { n[$2]++ } END { for (k in n) printf "%s %d, ", k, n[k] }' <<<"$1" | sed 's/, $//'; }

node_names() { kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'; }
node_count() { node_names | grep -c .; }

# service2_http_port: service2's REST container port (pod IP traffic).
# shellcheck disable=SC2153 # NAMESPACE and RELEASE come from the runner
service2_http_port() {
  kubectl -n "$NAMESPACE" get deploy "$RELEASE-service2" \
    -o jsonpath='{.spec.template.spec.containers[0].ports[?(@.name=="http")].containerPort}'
}

# --- p. spread ---------------------------------------------------------------------------
# With the chart's defaults (topologySpread over zone and hostname), each
# service's pods are on both nodes, and calls cross nodes. Not from every
# service2 pod: selection weighs latency, so one with two service1 pods on
# its own node may send none of 60 across (kind, 15a1448), while the one
# beside a single service1 pod sends most.
check_spread() {
  local s1 s2 status=0 pod node ip port out cross s1pod s1node served prefix crossed=0
  s1=$(pods_on "$NAMESPACE" "$(s1_selector "$RELEASE")")
  s2=$(pods_on "$NAMESPACE" "$(s2_selector "$RELEASE")")
  echo "service1 pods per node: $(per_node "$s1"); service2: $(per_node "$s2")"
  (($(awk '{print $2}' <<<"$s1" | sort -u | grep -c .) >= 2)) || status=1
  (($(awk '{print $2}' <<<"$s2" | sort -u | grep -c .) >= 2)) || status=1
  every_replica_in_use || return 1
  port=$(service2_http_port)
  while read -r pod node ip; do
    prefix=spread-$pod
    out=$(node_sh "$CHECKS_DIR/load.sh" calls "http://$ip:$port/api/v1/say-hello?name=spread" "$prefix" 60)
    [[ $out == "sent 60 failed 0" ]] || status=1
    cross=0
    while read -r s1pod s1node _; do
      [[ $s1node == "$node" ]] && continue
      served=$(kubectl -n "$NAMESPACE" logs "$s1pod" | grep -F "\"request_id\":\"$prefix-" | grep -cF 'grpc call served')
      cross=$((cross + served))
    done <<<"$s1"
    echo "service2 $pod on $node, by pod IP: $out; $cross served by service1 on another node"
    crossed=$((crossed + cross))
  done <<<"$s2"
  ((crossed > 0)) || status=1
  return $status
}

# most_service1_node: the node with the most service1 pods.
most_service1_node() {
  pods_on "$NAMESPACE" "$(s1_selector "$RELEASE")" | awk '{print $2}' | sort | uniq -c | sort -rn | awk 'NR == 1 {print $2}'
}

# ready_sampler STOP_FILE OUT_FILE: until STOP_FILE exists (at most 10
# minutes), appends how many service1 pods are Ready and not terminating, the
# pods the PodDisruptionBudget counts as healthy.
ready_sampler() {
  local stop=$1 out=$2 deadline=$((SECONDS + 600))
  while [[ ! -e $stop ]] && ((SECONDS < deadline)); do
    kubectl -n "$NAMESPACE" get pods -l "$(s1_selector "$RELEASE")" \
      -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}{"|"}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
      grep -cx '|True' >>"$out"
    sleep 0.2
  done
}

drain() { kubectl drain "$1" --ignore-daemonsets --delete-emptydir-data --timeout "$2"; }

drain_and_wait() {
  drain "$1" 5m && kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service1" --timeout 2m &&
    kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service2" --timeout 2m
}

# --- q. drain under load -----------------------------------------------------------------
# kubectl drain evicts through the eviction API, so the PDB decides how many
# service1 pods may be down at once; a sampler records how many were Ready.
check_drain() {
  local node replicas healthy stop samples sampler_pid min count status=0 left
  # Check s, before this one, froze a node: its service2 pod may not yet be
  # back in the Service, nor every service1 replica in service2's view.
  kubectl -n "$NAMESPACE" wait --for=condition=Ready pod -l "$(s2_selector "$RELEASE")" --timeout 120s >/dev/null || return 1
  every_replica_in_use || return 1
  node=$(most_service1_node)
  replicas=$(kubectl -n "$NAMESPACE" get "deploy/$RELEASE-service1" -o jsonpath='{.spec.replicas}')
  healthy=$(kubectl -n "$NAMESPACE" get pdb "$RELEASE-service1" -o jsonpath='{.status.desiredHealthy}')
  echo "draining $node: service1 pods per node before: $(per_node "$(pods_on "$NAMESPACE" "$(s1_selector "$RELEASE")")")"
  stop=$CHECKS_TMP/sampler-stop samples=$CHECKS_TMP/ready-samples
  rm -f "$stop" "$samples"
  ready_sampler "$stop" "$samples" &
  sampler_pid=$!
  under_load "kubectl drain $node (eviction API) under load" drain_and_wait "$node" || status=1
  touch "$stop"
  wait "$sampler_pid"
  min=$(sort -n "$samples" | head -1) count=$(grep -c . "$samples")
  echo "service1 pods Ready (not terminating), sampled $count times during the drain: min $min of $replicas (PDB: at least $healthy)"
  [[ -n $min && -n $healthy ]] && ((count > 0 && min >= healthy)) || status=1
  left=$(pods_on "$NAMESPACE" "$(s1_selector "$RELEASE")")
  echo "service1 pods per node after: $(per_node "$left")"
  [[ $(awk '{print $2}' <<<"$left" | sort -u) != "$node" && -n $left ]] || status=1
  awk '{print $2}' <<<"$left" | grep -qxF "$node" && status=1
  kubectl uncordon "$node" >/dev/null || status=1
  [[ -z $(kubectl get node "$node" -o jsonpath='{.spec.unschedulable}') ]] || status=1
  echo "kubectl uncordon $node: schedulable again"
  return $status
}

# drain_must_fail NODE: ok when drain gives up (its --timeout) because a
# further eviction would break the PDB, and the service1 pods the PDB counts
# as healthy never went below what it asks.
drain_must_fail() {
  local healthy ready
  if drain "$1" 30s; then
    echo "drain of $1 succeeded"
    return 1
  fi
  healthy=$(kubectl -n "$NAMESPACE" get pdb "$RELEASE-service1" -o jsonpath='{.status.desiredHealthy}')
  ready=$(kubectl -n "$NAMESPACE" get pods -l "$(s1_selector "$RELEASE")" \
    -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}{"|"}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -cx '|True')
  echo "service1 pods Ready after the drain gave up: $ready (PDB: at least $healthy)"
  [[ -n $healthy ]] && ((ready >= healthy))
}

# --- r. a drain the PDB blocks -----------------------------------------------------------
# The chart refuses pdb.maxUnavailable 0 (its schema: "0 would block every
# node drain"), so the budget is broken the other way: at its minimum (1),
# with every other node cordoned, the first eviction's replacement has
# nowhere to run, and each further eviction would exceed the budget.
check_drain_blocked() {
  local node other status=0 count
  node=$(most_service1_node)
  count=$(pods_on "$NAMESPACE" "$(s1_selector "$RELEASE")" | awk -v n="$node" '$2 == n' | grep -c .)
  echo "draining $node ($count service1 pods, PDB maxUnavailable $(kubectl -n "$NAMESPACE" get pdb "$RELEASE-service1" -o jsonpath='{.spec.maxUnavailable}')) with every other node cordoned"
  ((count >= 2)) || { echo "needs two service1 pods on one node"; return 1; }
  for other in $(node_names); do
    [[ $other == "$node" ]] || kubectl cordon "$other" >/dev/null || status=1
  done
  under_load "kubectl drain $node --timeout 30s" drain_must_fail "$node" || status=1
  grep -F 'service1 pods Ready after' "$CHECKS_TMP/cmd.out"
  if grep -q "violate the pod's disruption budget" "$CHECKS_TMP/cmd.out"; then
    echo "drain refused: $(grep -m1 -o "Cannot evict pod as it would violate the pod's disruption budget" "$CHECKS_TMP/cmd.out")"
  else
    echo "drain did not report the disruption budget:"
    tail -3 "$CHECKS_TMP/cmd.out"
    status=1
  fi
  for other in $(node_names); do kubectl uncordon "$other" >/dev/null || status=1; done
  kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service1" --timeout 2m >/dev/null || status=1
  kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service2" --timeout 2m >/dev/null || status=1
  return $status
}

# --- s. a node that freezes --------------------------------------------------------------

# freeze_target: "NODE S2_POD S2_IP": a node with a service1 pod to freeze,
# and a service2 pod on another node to send the load to. The last node
# first: in tests/k8s the first one also runs the control plane's network.
freeze_target() {
  local s1 s2 node line
  s1=$(pods_on "$NAMESPACE" "$(s1_selector "$RELEASE")")
  s2=$(pods_on "$NAMESPACE" "$(s2_selector "$RELEASE")")
  for node in $(node_names | sort -r); do
    awk -v n="$node" '$2 == n { f = 1 } END { exit !f }' <<<"$s1" || continue
    line=$(awk -v n="$node" 'NF && $2 != n { print $1, $3; exit }' <<<"$s2")
    [[ -n $line ]] && { echo "$node $line"; return 0; }
  done
  return 1
}

# ready_endpoints_on NODE: service1's ready endpoints on NODE (EndpointSlices
# of the headless Service service2 resolves).
ready_endpoints_on() {
  kubectl -n "$NAMESPACE" get endpointslices -l "kubernetes.io/service-name=$RELEASE-service1-grpc" \
    -o jsonpath='{range .items[*].endpoints[*]}{.nodeName}{" "}{.conditions.ready}{"\n"}{end}' |
    grep -cx "$1 true"
}

# How long check s keeps a node frozen at least: more than
# kube-controller-manager's --node-monitor-grace-period (50 s by default).
FREEZE_MIN_SECONDS=${FREEZE_MIN_SECONDS:-60}

# freeze_until_noticed NODE: freezes NODE until Kubernetes marked it
# NotReady and its service1 endpoints not ready, and FREEZE_MIN_SECONDS
# passed (at most 300 s), resumes it,
# waits until it and every service1 pod are Ready again; prints the times.
freeze_until_noticed() {
  local node=$1 t0 ready eps t_nr='' t_ep='' t_back='' status=0
  t0=$SECONDS
  node_freeze "$node" || return 1
  while ((SECONDS - t0 < 300)); do
    ready=$(kubectl get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
    [[ -z $t_nr && -n $ready && $ready != True ]] && t_nr=$((SECONDS - t0))
    eps=$(ready_endpoints_on "$node")
    [[ -z $t_ep && -n $t_nr && $eps == 0 ]] && t_ep=$((SECONDS - t0))
    # Kept frozen past the controller-manager's default grace period (50 s)
    # even should the signals come sooner.
    [[ -n $t_nr && -n $t_ep ]] && ((SECONDS - t0 >= FREEZE_MIN_SECONDS)) && break
    sleep 1
  done
  node_thaw "$node"
  echo "frozen for $((SECONDS - t0)) s: node NotReady after ${t_nr:-never} s, its service1 endpoints not ready after ${t_ep:-never} s"
  [[ -n $t_nr && -n $t_ep ]] || status=1
  t0=$SECONDS
  kubectl wait --for=condition=Ready "node/$node" --timeout=120s >/dev/null || status=1
  t_back=$((SECONDS - t0))
  kubectl -n "$NAMESPACE" wait --for=condition=Ready pod -l "$(s1_selector "$RELEASE")" --timeout 120s >/dev/null || status=1
  echo "after resuming: node Ready after $t_back s, every service1 pod Ready after $((SECONDS - t0)) s"
  return $status
}

check_node_freeze() {
  local target node s2pod ip url stop out load_pid status=0
  every_replica_in_use || return 1
  target=$(freeze_target) || {
    echo "no node with a service1 pod whose peer node has a service2 pod: $(per_node "$(pods_on "$NAMESPACE" "$(s1_selector "$RELEASE")")")"
    return 1
  }
  read -r node s2pod ip <<<"$target"
  echo "freezing $node (service1 pods: $(pods_on "$NAMESPACE" "$(s1_selector "$RELEASE")" | awk -v n="$node" '$2 == n' | grep -c .)); load to service2 $s2pod ($ip) on the other node"
  url="http://$ip:$(service2_http_port)/api/v1/say-hello?name=freeze"
  stop=$(load_stop_name)
  node_sh "$CHECKS_DIR/load.sh" until "$url" "$stop" >"$CHECKS_TMP/load.out" &
  load_pid=$!
  freeze_until_noticed "$node" || status=1
  node_touch "$stop"
  wait "$load_pid"
  out=$(cat "$CHECKS_TMP/load.out")
  echo "load to $s2pod while $node was frozen: $out"
  [[ $out == "sent "*" failed 0 "* || $out == "sent "*" failed 0" ]] && [[ $out != "sent 0 "* ]] || status=1
  return $status
}

# --- t. Pod Security "restricted" --------------------------------------------------------
# Enforce, audit and warn at restricted: the install must be admitted with
# no warning from the API server (client-go prints them on stderr:
# "Warning: ..." from kubectl, "warnings.go:...] ..." from Helm's klog), and
# helm test too. The controls: a bare pod is refused in that namespace, and
# a bare Deployment draws the warning.
API_WARNING='^Warning:|warnings\.go:[0-9]+\]|would violate PodSecurity' 
check_pod_security() {
  local release=psa namespace=$NAMESPACE-restricted out status=0 mode labels=()
  # The namespace is created with its labels: admission reads them from its
  # cache, which a label added afterwards reaches a moment later.
  for mode in enforce audit warn; do
    labels+=("pod-security.kubernetes.io/$mode: restricted" "pod-security.kubernetes.io/$mode-version: latest")
  done
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n' "$namespace" >"$CHECKS_TMP/psa-ns.yaml"
  printf '    %s\n' "${labels[@]}" >>"$CHECKS_TMP/psa-ns.yaml"
  kubectl create -f "$CHECKS_TMP/psa-ns.yaml" >/dev/null || return 1
  if out=$(kubectl -n "$namespace" run bare --image="$IMAGE_REPOSITORY:$IMAGE_TAG" --image-pull-policy=Never --dry-run=server 2>&1); then
    echo "control: a bare pod was admitted in $namespace"
    status=1
  elif grep -q 'violates PodSecurity "restricted:' <<<"$out"; then
    echo "control: a bare pod is refused ($(grep -o 'violates PodSecurity "restricted:[a-z]*"' <<<"$out" | head -1))"
  else
    echo "control: a bare pod was refused, but not by PodSecurity: $out"
    status=1
  fi
  out=$(kubectl -n "$namespace" create deployment bare --image="$IMAGE_REPOSITORY:$IMAGE_TAG" --dry-run=server 2>&1)
  if grep -qE "$API_WARNING" <<<"$out"; then
    echo "control: a bare Deployment draws the warning ($(grep -oE 'would violate PodSecurity "restricted:[a-z]*"' <<<"$out" | head -1))"
  else
    echo "control: a bare Deployment drew no warning: $out"
    status=1
  fi
  out=$(helm_install "$release" "$namespace" --set service1.replicas=2,service2.replicas=1 2>&1) || status=1
  out+=$(helm test "$release" --namespace "$namespace" --timeout 2m 2>&1) || status=1
  if grep -qE "$API_WARNING" <<<"$out"; then
    echo "API server warnings:"
    grep -E "$API_WARNING" <<<"$out" | head -5
    status=1
  fi
  echo "helm install and helm test in a namespace enforcing, auditing and warning at restricted: $( ((status == 0)) && echo 'admitted, no warnings' || echo failed)"
  helm uninstall "$release" --namespace "$namespace" --wait >/dev/null 2>&1 || true
  kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  return $status
}

# --- u. Helm 3 and Helm 4 ----------------------------------------------------------------
# helm_cycle LABEL HELM...: install, helm test, an upgrade that rolls both
# Deployments, rollback to revision 1; each revision serves.
helm_cycle() {
  local label=$1 release namespace url out status=0 history
  shift
  release=cycle-$label namespace=$NAMESPACE-$label
  call() {
    url=$(service_url "$namespace" "$release-service2" /api/v1/say-hello?name=cycle)
    out=$(node_sh "$CHECKS_DIR/load.sh" calls "$url" "cycle-$label" 10)
    [[ $out == "sent 10 failed 0" ]] || {
      echo "$1: $out"
      failed_call_logs "$namespace" "$out"
      status=1
    }
  }
  "$@" install "$release" "$CHART" --namespace "$namespace" --create-namespace \
    --set image.repository="$IMAGE_REPOSITORY",image.tag="$IMAGE_TAG",image.pullPolicy=Never \
    --set service1.replicas=1,service2.replicas=1 --wait --timeout 5m >/dev/null || return 1
  reachable "$(service_url "$namespace" "$release-service2" /api/v1/say-hello?name=cycle)" >/dev/null || {
    echo "install: service2's Service never answered"
    status=1
  }
  call install
  "$@" test "$release" --namespace "$namespace" --timeout 2m >/dev/null || { echo "helm test failed"; status=1; }
  "$@" upgrade "$release" "$CHART" --namespace "$namespace" --reuse-values \
    --set tls.reloadIntervalSeconds=4 --wait --timeout 5m >/dev/null || { echo "upgrade failed"; status=1; }
  call upgrade
  "$@" rollback "$release" 1 --namespace "$namespace" --wait --timeout 5m >/dev/null || { echo "rollback failed"; status=1; }
  call rollback
  history=$("$@" history "$release" --namespace "$namespace" -o json | python3 -c 'import json, sys
print(" ".join("%s:%s" % (r["revision"], r["status"]) for r in json.load(sys.stdin)))')
  [[ $("$@" get values "$release" --namespace "$namespace" -o json) != *reloadIntervalSeconds* ]] || {
    echo "the rollback kept the upgrade's value"
    status=1
  }
  echo "$("$@" version --short 2>/dev/null | head -1): install, test, upgrade, rollback; history $history; say-hello after each: $( ((status == 0)) && echo ok || echo failed)"
  [[ $history == "1:superseded 2:superseded 3:deployed" ]] || status=1
  "$@" uninstall "$release" --namespace "$namespace" --wait >/dev/null 2>&1 || true
  kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  return $status
}

check_helm_versions() {
  local status=0
  if declare -F helm3 >/dev/null; then
    helm_cycle helm3 helm3 || status=1
  else
    echo "no Helm 3 in this runner"
    status=1
  fi
  helm_cycle helm4 helm || status=1
  return $status
}

# --- v. upgrade from the previous chart version ------------------------------------------
# The chart as it was at the last commit that changed `version` in
# Chart.yaml, installed, then `helm upgrade` to the working tree's chart
# under load: no failed request, and the TLS Secrets are the same.
check_previous_chart_upgrade() {
  local release=prev namespace=$NAMESPACE-previous repo commit dir version secrets before after status=0
  repo=$(cd "$CHECKS_DIR/../.." && pwd)
  # A CI system may clone with --depth 1: the history it left out is asked of
  # the clone's origin before the check gives up.
  if [[ $(git -C "$repo" rev-parse --is-shallow-repository) == true ]]; then
    git -C "$repo" fetch -q --unshallow 2>/dev/null || true
  fi
  commit=$(git -C "$repo" log -1 --format=%h -G '^version:' -- charts/grpc-services/Chart.yaml)
  [[ -n $commit ]] || {
    echo "no commit in $repo's history changed the chart's version (a shallow clone?)"
    return 1
  }
  dir=$(mktemp -d)
  git -C "$repo" archive "$commit" charts/grpc-services | tar -x -C "$dir" || return 1
  version=$(awk '/^version:/ {print $2}' "$dir/charts/grpc-services/Chart.yaml")
  if ! CHART=$dir/charts/grpc-services helm_install "$release" "$namespace" >/dev/null; then
    echo "helm install of chart $version (at $commit) failed"
    rm -rf "$dir"
    return 1
  fi
  rm -rf "$dir"
  reachable "$(service_url "$namespace" "$release-service2" /api/v1/say-hello?name=previous)" >/dev/null || status=1
  secrets=$(kubectl -n "$namespace" get secrets -l "app.kubernetes.io/instance=$release" -o name | sort)
  before=$(for s in $secrets; do echo "$s $(NAMESPACE=$namespace data_of "${s#secret/}")"; done)
  echo "installed chart $version as of $commit (the last commit that changed its version)"
  NAMESPACE=$namespace RELEASE=$release under_load "helm upgrade to the working tree's chart ($(awk '/^version:/ {print $2}' "$CHART/Chart.yaml"))" \
    helm_install "$release" "$namespace" || status=1
  after=$(for s in $secrets; do echo "$s $(NAMESPACE=$namespace data_of "${s#secret/}")"; done)
  echo "TLS Secrets (digest of their data) before and after: $(tr '\n' ' ' <<<"$before")"
  [[ -n $secrets && $before == "$after" ]] || {
    echo "after: $(tr '\n' ' ' <<<"$after")"
    status=1
  }
  helm uninstall "$release" --namespace "$namespace" --wait >/dev/null 2>&1 || true
  kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  return $status
}

# run_two_node_checks: p to v, or those $CHECKS names (spread drain
# drain_blocked node_freeze pod_security helm_versions previous_chart).
run_two_node_checks() {
  local nodes check
  nodes=$(node_count)
  for check in spread node_freeze drain drain_blocked pod_security helm_versions previous_chart; do
    [[ -z ${CHECKS:-} || " $CHECKS " == *" $check "* ]] || continue
    case $check in
      spread | node_freeze | drain | drain_blocked)
        if ((nodes < 2)); then
          echo "skip - $check (needs two nodes; the cluster has $nodes)"
          continue
        fi
        ;;
    esac
    case $check in
      spread) run_check "p. spread: each service's pods on both nodes (zones), say-hello crosses nodes" check_spread ;;
      node_freeze)
        if declare -F node_freeze >/dev/null; then
          run_check "s. a node frozen (kubelet, runtime, pods: SIGSTOP) past the node-monitor grace period, load on the other node's service2: no failed request, node Ready after" check_node_freeze
        else
          echo "skip - node_freeze (this runner cannot freeze a node)"
        fi
        ;;
      drain) run_check "q. kubectl drain under load (eviction API): no failed request, the PDB held, pods moved, uncordon" check_drain ;;
      drain_blocked) run_check "r. kubectl drain that the PDB blocks (other nodes cordoned) fails its --timeout, no failed request" check_drain_blocked ;;
      pod_security) run_check "t. Pod Security restricted (enforce, audit, warn): install and helm test with no warnings" check_pod_security ;;
      helm_versions) run_check "u. Helm 3 and Helm 4: install, helm test, upgrade, rollback" check_helm_versions ;;
      previous_chart) run_check "v. upgrade from the previous chart version under load: no failed request, certificates kept" check_previous_chart_upgrade ;;
    esac
  done
}
