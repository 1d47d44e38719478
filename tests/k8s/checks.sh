# shellcheck shell=bash
# The live checks of the chart and image on a real cluster, shared by
# `make test-cluster` (tests/k8s/run.sh: upstream components built from
# source, inside a network namespace) and `make test-kind` (tests/kind/run.sh),
# so a user's kind run and our CI run the same assertions.
#
# Source it after defining, in the runner:
#   kubectl, helm           commands (or functions) that reach the cluster
#   local_sh SCRIPT ARGS..  runs a bash script where kubectl runs, i.e. where
#                           `kubectl port-forward` listens
#   node_sh SCRIPT ARGS..   runs a bash script where ClusterIPs and pod IPs
#                           are reachable (the node); it needs bash and curl
#   node_touch FILE         creates FILE where node_sh scripts run
# and the variables CHART, NAMESPACE, RELEASE, IMAGE_REPOSITORY, IMAGE_TAG,
# PF_PORT (a free local port for port-forwards).
#
# Each check_* prints one line per finding and returns non-zero on failure;
# run_check counts them.

CHECKS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checks_passed=0
checks_failed=0

# run_check NAME FUNCTION ARGS...: runs one check, prints "ok"/"FAIL" with its
# last line of output.
run_check() {
  local name=$1 out status line
  shift
  out=$("$@" 2>&1) && status=0 || status=$?
  if [[ -n $out ]]; then while IFS= read -r line; do echo "     $line"; done <<<"$out"; fi
  if ((status == 0)); then
    checks_passed=$((checks_passed + 1))
    echo "ok   - $name"
  else
    checks_failed=$((checks_failed + 1))
    echo "FAIL - $name"
  fi
}

checks_summary() {
  echo "$checks_passed passed, $checks_failed failed"
  ((checks_failed == 0))
}

s1_selector() { echo "app.kubernetes.io/instance=$1,app.kubernetes.io/component=service1"; }
s2_selector() { echo "app.kubernetes.io/instance=$1,app.kubernetes.io/component=service2"; }

# helm_install RELEASE NAMESPACE ARGS...: install or upgrade with the local image,
# never pulled.
helm_install() {
  local release=$1 namespace=$2
  shift 2
  helm upgrade --install "$release" "$CHART" --namespace "$namespace" --create-namespace \
    --set image.repository="$IMAGE_REPOSITORY",image.tag="$IMAGE_TAG",image.pullPolicy=Never \
    --wait --timeout 5m "$@"
}

# failed_call_logs NAMESPACE OUT: for each failed call in load.sh's OUT
# ("ID:STATUS@Ss"), what the namespace's pods logged under its request id, so
# a failure says where it happened (nothing logged: it reached no pod that
# is still running).
failed_call_logs() {
  local namespace=$1 id pod
  for id in $(grep -oE '[^ ]+:[0-9]{3}@[0-9]+s' <<<"$2" | cut -d: -f1 | head -3); do
    for pod in $(kubectl -n "$namespace" get pods -o name); do
      kubectl -n "$namespace" logs "$pod" --all-containers 2>/dev/null | grep -F "\"request_id\":\"$id\"" |
        head -3 | sed "s|^|     $id ${pod#pod/}: |"
    done
  done
}

# service_url NAMESPACE SERVICE PATH: http://CLUSTER_IP:PORT/PATH.
service_url() {
  local ip port
  ip=$(kubectl -n "$1" get svc "$2" -o jsonpath='{.spec.clusterIP}')
  port=$(kubectl -n "$1" get svc "$2" -o jsonpath='{.spec.ports[0].port}')
  echo "http://$ip:$port$3"
}

# reachable URL: waits until URL, on a Service just installed, answers 200
# from the node (see load.sh reachable); prints how many tries it took.
reachable() { node_sh "$CHECKS_DIR/load.sh" reachable "$1"; }

# readyz NAMESPACE POD PORT: the pod's /readyz through the API server's proxy.
readyz() { kubectl get --raw "/api/v1/namespaces/$1/pods/$2:$3/proxy/readyz"; }

# service2_endpoints NAMESPACE RELEASE: "ready/known" of every service2 pod, space-separated.
service2_endpoints() {
  local pod out=()
  for pod in $(kubectl -n "$1" get pods -l "$(s2_selector "$2")" --field-selector=status.phase=Running -o name); do
    out+=("$(readyz "$1" "${pod#pod/}" 9081 | python3 -c 'import json, sys
e = json.load(sys.stdin)["service1_endpoints"]
print("%s/%s" % (e["ready"], e["known"]))')")
  done
  echo "${out[*]}"
}

# service2_sees N SECONDS: waits, at most SECONDS, until every service2 pod
# reports N ready and N known service1 replicas; prints how long that took,
# or what they saw instead.
service2_sees() {
  local n=$1 t0=$SECONDS seen
  while ((SECONDS - t0 < $2)); do
    seen=$(service2_endpoints "$NAMESPACE" "$RELEASE")
    if [[ -n $seen && $(tr ' ' '\n' <<<"$seen" | sort -u) == "$n/$n" ]]; then
      echo "every service2 pod sees $n/$n (ready/known) after $((SECONDS - t0)) s"
      return 0
    fi
    sleep 1
  done
  echo "service2 pods see $seen (ready/known), not $n/$n, after $((SECONDS - t0)) s"
  return 1
}

# every_replica_in_use: waits (at most 60 s) until every service2 pod sees all
# the service1 replicas ready; says nothing unless they never do.
every_replica_in_use() {
  local want out
  want=$(kubectl -n "$NAMESPACE" get "deploy/$RELEASE-service1" -o jsonpath='{.spec.replicas}')
  out=$(service2_sees "$want" 60) || {
    echo "$out"
    return 1
  }
}

# --- a. install ---------------------------------------------------------------------
check_install() {
  helm_install "$RELEASE" "$NAMESPACE" >/dev/null || return 1
  local s1 s2 probe
  s1=$(kubectl -n "$NAMESPACE" get pods -l "$(s1_selector "$RELEASE")" -o jsonpath='{range .items[*]}{.status.containerStatuses[0].ready}{" "}{end}')
  s2=$(kubectl -n "$NAMESPACE" get pods -l "$(s2_selector "$RELEASE")" -o jsonpath='{range .items[*]}{.status.containerStatuses[0].ready}{" "}{end}')
  probe=$(kubectl -n "$NAMESPACE" get deploy "$RELEASE-service1" -o jsonpath='{.spec.template.spec.containers[0].readinessProbe.grpc.port}')
  echo "service1 pods ready: $s1; service2 pods ready: $s2; readiness probe: grpc on port $probe"
  [[ $s1 == "true true true " && $s2 == "true true " && $probe == 9080 ]]
}

# --- b. helm test -------------------------------------------------------------------
# The test pod's hook-delete-policy removes it once it succeeded (a failed
# one stays for `kubectl logs`).
check_helm_test() {
  local out pod=$RELEASE-test-say-hello
  out=$(helm test "$RELEASE" --namespace "$NAMESPACE" --timeout 2m 2>&1) || {
    echo "$out" | tail -3
    kubectl -n "$NAMESPACE" logs "$pod" 2>&1 | tail -3
    return 1
  }
  echo "helm test $RELEASE: $(grep -m1 -o 'Phase: *[A-Za-z]*' <<<"$out" | tr -s ' ')"
  kubectl -n "$NAMESPACE" wait --for=delete "pod/$pod" --timeout=30s >/dev/null 2>&1 || {
    echo "the succeeded test pod $pod is still there after 30 s (hook-delete-policy)"
    return 1
  }
  echo "test pod $pod deleted after it succeeded"
}

# --- c. port-forward ----------------------------------------------------------------
check_port_forward() {
  local request_id=pf-$$-$RANDOM out pod s1_hits s2_hits i
  out=$(local_sh "$CHECKS_DIR/port-forward.sh" "$NAMESPACE" "svc/$RELEASE-service2" "$PF_PORT" 80 "$request_id") || {
    echo "$out"
    return 1
  }
  echo "$out"
  # service1 writes its access line when the response body is dropped, which
  # may come a moment after service2 has passed the answer on.
  for ((i = 0; i < 10; i++)); do
    s1_hits=0 s2_hits=0
    for pod in $(kubectl -n "$NAMESPACE" get pods -l "$(s2_selector "$RELEASE")" -o name); do
      kubectl -n "$NAMESPACE" logs "$pod" | grep -qF "\"request_id\":\"$request_id\"" && s2_hits=$((s2_hits + 1))
    done
    for pod in $(kubectl -n "$NAMESPACE" get pods -l "$(s1_selector "$RELEASE")" -o name); do
      kubectl -n "$NAMESPACE" logs "$pod" | grep -F "\"request_id\":\"$request_id\"" | grep -qF 'grpc call served' &&
        s1_hits=$((s1_hits + 1))
    done
    ((s2_hits == 1 && s1_hits == 1)) && break
    sleep 1
  done
  echo "request id $request_id in the logs of $s2_hits service2 pod(s) and $s1_hits service1 pod(s)"
  ((s2_hits == 1 && s1_hits == 1))
}

# --- d. balancing -------------------------------------------------------------------
# Every pod serves a share (connection-level balancing would give one pod all
# of them); not an equal one, since selection weighs each pod's latency: a
# pod on another node than the service2 pod, or one whose first answers were
# slow (just started), gets fewer, and keeps a share only as its estimate
# decays. On kind such a pod served 46 and 27 of 300 (a 10 % floor failed
# once), so the run is 600 calls and the floor 5 %.
check_balancing() {
  local prefix=bal-$$-$RANDOM url out pod served calls=600 min ok=0
  min=$((calls * 5 / 100))
  # service2 is Ready once it has found one replica, not every one.
  every_replica_in_use || return 1
  url=$(service_url "$NAMESPACE" "$RELEASE-service2" /api/v1/say-hello?name=balance)
  out=$(node_sh "$CHECKS_DIR/load.sh" calls "$url" "$prefix" "$calls")
  echo "$calls calls through service2's ClusterIP: $out"
  [[ $out == "sent $calls failed 0" ]] || ok=1
  for pod in $(kubectl -n "$NAMESPACE" get pods -l "$(s1_selector "$RELEASE")" -o name); do
    served=$(kubectl -n "$NAMESPACE" logs "$pod" | grep -F "\"request_id\":\"$prefix-" | grep -cF 'grpc call served')
    echo "$pod ($(kubectl -n "$NAMESPACE" get "$pod" -o jsonpath='{.spec.nodeName}')) served $served (at least $min wanted: 5 %)"
    ((served >= min)) || ok=1
  done
  return $ok
}

# load_stop_name: a STOP_FILE path for `load.sh until` that no earlier load
# used, in this run or a previous one (load.sh removes it when it stops). A
# name from $$ and $RANDOM alone once matched an earlier check's file of the
# same run, and check s's load stopped before its first call ("sent 0").
load_stop_name() { echo "/tmp/grpc-services-load-stop-$(date +%s%N)-$BASHPID"; }

# under_load DESCRIPTION COMMAND...: runs COMMAND while load.sh sends calls to
# service2's ClusterIP; ok when COMMAND succeeds and no call failed.
under_load() {
  local what=$1 url stop out load_pid status=0
  shift
  url=$(service_url "$NAMESPACE" "$RELEASE-service2" /api/v1/say-hello?name=load)
  stop=$(load_stop_name)
  node_sh "$CHECKS_DIR/load.sh" until "$url" "$stop" >"$CHECKS_TMP/load.out" &
  load_pid=$!
  "$@" >"$CHECKS_TMP/cmd.out" 2>&1 || status=$?
  node_touch "$stop"
  wait "$load_pid"
  out=$(cat "$CHECKS_TMP/load.out")
  echo "$what: $out"
  if ((status != 0)); then
    tail -5 "$CHECKS_TMP/cmd.out"
    return 1
  fi
  [[ $out == "sent "*" failed 0 "* || $out == "sent "*" failed 0" ]] && [[ $out != "sent 0 "* ]]
}

rollout() {
  kubectl -n "$NAMESPACE" rollout restart "deploy/$1" &&
    kubectl -n "$NAMESPACE" rollout status "deploy/$1" --timeout 3m
}

# Deletes one service1 pod and waits until the Deployment is whole again.
delete_one_service1_pod() {
  local victim
  victim=$(kubectl -n "$NAMESPACE" get pods -l "$(s1_selector "$RELEASE")" -o name | head -1)
  kubectl -n "$NAMESPACE" delete "$victim" --wait=true --timeout 90s &&
    kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service1" --timeout 2m
}

# --- e. disruption under steady load ------------------------------------------------
check_delete_pod() { under_load "delete a service1 pod" delete_one_service1_pod; }
check_restart_service1() { under_load "rollout restart service1" rollout "$RELEASE-service1"; }
check_restart_service2() { under_load "rollout restart service2" rollout "$RELEASE-service2"; }

# --- f. upgrade ---------------------------------------------------------------------
# data_of SECRET: a digest of the Secret's data (certificates and keys).
data_of() { kubectl -n "$NAMESPACE" get secret "$1" -o jsonpath='{.data}' | sha256sum | cut -c1-16; }
check_upgrade() {
  local secrets before after
  secrets=$(kubectl -n "$NAMESPACE" get secrets -l "app.kubernetes.io/instance=$RELEASE" -o name | sort)
  before=$(for s in $secrets; do echo "$s $(data_of "${s#secret/}")"; done)
  under_load "helm upgrade (tls.reloadIntervalSeconds changed: both Deployments roll)" \
    helm_install "$RELEASE" "$NAMESPACE" --reuse-values --set tls.reloadIntervalSeconds=4 || return 1
  after=$(for s in $secrets; do echo "$s $(data_of "${s#secret/}")"; done)
  echo "TLS Secrets (digest of their data) before and after: $(tr '\n' ' ' <<<"$before")"
  [[ -n $secrets && $before == "$after" ]] || {
    echo "after: $(tr '\n' ' ' <<<"$after")"
    return 1
  }
  local url out
  url=$(service_url "$NAMESPACE" "$RELEASE-service2" /api/v1/say-hello?name=upgraded)
  out=$(node_sh "$CHECKS_DIR/load.sh" calls "$url" upgraded 20)
  echo "after the upgrade (same CA, mTLS): $out"
  [[ $out == "sent 20 failed 0" ]]
}

# --- g. scaling ---------------------------------------------------------------------
# scale_and_follow N: scales service1 to N; ok when every service2 pod reports
# N ready and N known replicas within 30 s of the Deployment being ready.
scale_and_follow() {
  local n=$1 out status=0
  kubectl -n "$NAMESPACE" scale "deploy/$RELEASE-service1" --replicas "$n" &&
    kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service1" --timeout 2m || return 1
  # Pods scaled away are gone from DNS only once they finish draining, which
  # this waits out.
  out=$(service2_sees "$n" 30) || status=1
  echo "service1 scaled to $n: $out"
  return $status
}
scale_to_5_then_1() { scale_and_follow 5 && scale_and_follow 1; }
check_scale() {
  local status=0
  under_load "scale service1 to 5, then to 1" scale_to_5_then_1 || status=1
  grep -F 'service1 scaled' "$CHECKS_TMP/cmd.out"
  kubectl -n "$NAMESPACE" scale "deploy/$RELEASE-service1" --replicas 3 >/dev/null &&
    kubectl -n "$NAMESPACE" rollout status "deploy/$RELEASE-service1" --timeout 2m >/dev/null || status=1
  return $status
}

# --- h. existing Secrets ---------------------------------------------------------------
# check_existing_secret: a second release, in its own namespace, whose TLS
# Secrets are made beforehand from certificates by the repository's certgen.
check_existing_secret() {
  local release=existing namespace=$NAMESPACE-existing dir url out status=0
  dir=$(mktemp -d)
  (cd "$CHECKS_DIR/../.." && cargo run -q -p certgen -- --out "$dir" --san "$release-service1-grpc") >/dev/null || return 1
  kubectl create namespace "$namespace" >/dev/null
  kubectl -n "$namespace" create secret generic "$release-s1-tls" --from-file=tls.crt="$dir/service1.crt" \
    --from-file=tls.key="$dir/service1.key" --from-file=ca.crt="$dir/ca.crt" >/dev/null
  kubectl -n "$namespace" create secret generic "$release-s2-tls" --from-file=tls.crt="$dir/service2.crt" \
    --from-file=tls.key="$dir/service2.key" --from-file=ca.crt="$dir/ca.crt" >/dev/null
  rm -rf "$dir"
  if helm_install "$release" "$namespace" --set tls.mode=existingSecret \
    --set "tls.existingSecret.service1=$release-s1-tls,tls.existingSecret.service2=$release-s2-tls" \
    --set service1.replicas=2,service2.replicas=1 >/dev/null; then
    url=$(service_url "$namespace" "$release-service2" /api/v1/say-hello?name=existing)
    reachable "$url" || status=1
    out=$(node_sh "$CHECKS_DIR/load.sh" calls "$url" existing 20)
    echo "release $release with tls.mode=existingSecret (certgen's certificates): $out"
    [[ $out == "sent 20 failed 0" ]] || status=1
    failed_call_logs "$namespace" "$out"
  else
    echo "helm install with tls.mode=existingSecret failed"
    status=1
  fi
  helm uninstall "$release" --namespace "$namespace" --wait >/dev/null 2>&1 || true
  kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  return $status
}

# run_all_checks: a to h in order, or the subset named in $CHECKS
# (e.g. CHECKS="install port_forward").
run_all_checks() {
  local all="install helm_test port_forward balancing delete_pod restart_service1 restart_service2 upgrade scale existing_secret"
  local check
  for check in ${CHECKS:-$all}; do
    case $check in
      install) run_check "a. helm install --wait: every pod Ready through native gRPC probes" check_install ;;
      helm_test) run_check "b. helm test, right after install" check_helm_test ;;
      port_forward) run_check "c. kubectl port-forward to service2; request id echoed and in both services' logs" check_port_forward ;;
      balancing) run_check "d. 600 calls balanced per request over the 3 service1 pods (each >= 5 %)" check_balancing ;;
      delete_pod) run_check "e. kubectl delete pod (service1) under load: no failed request" check_delete_pod ;;
      restart_service1) run_check "e. rollout restart service1 under load: no failed request" check_restart_service1 ;;
      restart_service2) run_check "e. rollout restart service2 under load: no failed request" check_restart_service2 ;;
      upgrade) run_check "f. helm upgrade keeps the CA, mTLS works, no failed request" check_upgrade ;;
      scale) run_check "g. scale service1 to 5, then 1: service2 follows within 30 s, no failed request" check_scale ;;
      existing_secret) run_check "h. tls.mode=existingSecret with certgen's certificates" check_existing_secret ;;
      network_policy | network_policy_egress) ;; # j, k, w: the runner's, since they need a policy controller
      spread | node_freeze | drain | drain_blocked | pod_security | helm_versions | previous_chart) ;; # p to v: two-nodes.sh's run_two_node_checks
      freeze_pod | drop_packets) ;; # m, n: gray-failure.sh's run_gray_failure_checks
      monitoring) ;;     # l: the runner's, since it runs Prometheus in the cluster's namespace
      everything_on) ;;  # m: the runner's (tests/k8s/everything-on.sh)
      operator_crds | otel | hpa | cert_manager | ingress) ;; # A1 to A5: tests/k8s/addons/checks.sh's run_addon_checks
      *)
        echo "unknown check $check"
        return 1
        ;;
    esac
  done
}
