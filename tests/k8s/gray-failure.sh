# shellcheck shell=bash
# Live checks of a service1 pod that is connected but does not answer: its
# process frozen (SIGSTOP from the node), or its packets dropped (iptables in
# its network namespace), each for FAULT_SECONDS under steady load. Sourced
# by the runners after checks.sh, whose helpers and variables it uses.

FAULT_SECONDS=${FAULT_SECONDS:-20}

# with_one_service1_pod MODE: injects MODE (node-faults.sh) into one service1
# pod, then waits until every service1 pod is Ready again.
with_one_service1_pod() {
  local mode=$1 pod uid
  pod=$(kubectl -n "$NAMESPACE" get pods -l "$(s1_selector "$RELEASE")" -o jsonpath='{.items[0].metadata.name}')
  uid=$(kubectl -n "$NAMESPACE" get pod "$pod" -o jsonpath='{.metadata.uid}')
  [[ -n $uid ]] || return 1
  node_sh "$CHECKS_DIR/node-faults.sh" "$mode" "$uid" "$FAULT_SECONDS" &&
    kubectl -n "$NAMESPACE" wait --for=condition=Ready pod -l "$(s1_selector "$RELEASE")" --timeout 120s
}

check_freeze_pod() { under_load "SIGSTOP of a service1 pod for ${FAULT_SECONDS} s" with_one_service1_pod freeze; }
check_drop_packets() { under_load "packets of a service1 pod dropped for ${FAULT_SECONDS} s" with_one_service1_pod drop; }

# run_gray_failure_checks: both, unless $CHECKS names neither.
run_gray_failure_checks() {
  if [[ -z ${CHECKS:-} || " $CHECKS " == *" freeze_pod "* ]]; then
    run_check "m. a service1 pod's process frozen (SIGSTOP from the node) under load: no failed request" check_freeze_pod
  fi
  if [[ -z ${CHECKS:-} || " $CHECKS " == *" drop_packets "* ]]; then
    run_check "n. a service1 pod's packets dropped (iptables DROP in its network namespace) under load: no failed request" check_drop_packets
  fi
}
