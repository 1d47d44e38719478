# shellcheck shell=bash
# Live checks of a service1 pod that is connected but does not answer: its
# process frozen (SIGSTOP from the node), or its packets dropped (iptables in
# its network namespace), each for FAULT_SECONDS under steady load. Sourced
# by the runners after checks.sh, whose helpers and variables it uses.
#
# Each check first waits until every service2 pod uses every service1 replica
# (a pod that has just been faulty may still be out of service2's view), and
# requires service2 to have ejected the pod during the fault: a fault that
# never reached service2's traffic would prove nothing.

FAULT_SECONDS=${FAULT_SECONDS:-20}

# ejections NAMESPACE RELEASE: service1_ejections_total, summed over reasons
# and every service2 pod.
ejections() {
  local pod total=0 n
  for pod in $(kubectl -n "$1" get pods -l "$(s2_selector "$2")" --field-selector=status.phase=Running -o name); do
    n=$(kubectl get --raw "/api/v1/namespaces/$1/pods/${pod#pod/}:9081/proxy/metrics" |
      awk '/^service1_ejections_total/ { sum += $2 } END { printf "%d", sum }')
    total=$((total + n))
  done
  echo "$total"
}

# with_one_service1_pod MODE INDEX: injects MODE (node-faults.sh) into the
# INDEXth service1 pod, then waits until every service1 pod is Ready again;
# ok when service2 ejected it meanwhile.
with_one_service1_pod() {
  local mode=$1 index=$2 pod uid before after
  pod=$(kubectl -n "$NAMESPACE" get pods -l "$(s1_selector "$RELEASE")" -o jsonpath="{.items[$index].metadata.name}")
  uid=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.metadata.uid}')
  [[ -n $uid ]] || return 1
  before=$(ejections "$NAMESPACE" "$RELEASE")
  node_sh "$CHECKS_DIR/node-faults.sh" "$mode" "$uid" "$FAULT_SECONDS" || return 1
  after=$(ejections "$NAMESPACE" "$RELEASE")
  echo "service2 pods ejected $pod $((after - before)) time(s) (service1_ejections_total)"
  kubectl -n "$NAMESPACE" wait --for=condition=Ready pod -l "$(s1_selector "$RELEASE")" --timeout 120s >/dev/null &&
    ((after > before))
}

check_fault() {
  local what=$1 mode=$2 index=$3 status=0
  every_replica_in_use || return 1
  under_load "$what" with_one_service1_pod "$mode" "$index" || status=1
  grep -F 'ejected' "$CHECKS_TMP/cmd.out"
  return $status
}
check_freeze_pod() { check_fault "SIGSTOP of a service1 pod for ${FAULT_SECONDS} s" freeze 0; }
check_drop_packets() { check_fault "packets of a service1 pod dropped for ${FAULT_SECONDS} s" drop 1; }

# run_gray_failure_checks: both, unless $CHECKS names neither.
run_gray_failure_checks() {
  if [[ -z ${CHECKS:-} || " $CHECKS " == *" freeze_pod "* ]]; then
    run_check "m. a service1 pod's process frozen (SIGSTOP from the node) under load: no failed request, service2 ejects it" check_freeze_pod
  fi
  if [[ -z ${CHECKS:-} || " $CHECKS " == *" drop_packets "* ]]; then
    run_check "n. a service1 pod's packets dropped (iptables DROP in its network namespace) under load: no failed request, service2 ejects it" check_drop_packets
  fi
}
