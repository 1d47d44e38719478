# shellcheck shell=bash
# Check o: the chart with tests/chart/values-everything-on.yaml, live: a
# second release in its own namespace with an init container, a sidecar
# (both from the project's image, which has no shell), extra volumes from
# extraObjects, an HPA, and service2 as a NodePort Service; say-hello through
# the node port and `helm test` (whose pod has its own nodeSelector and
# tolerations). The release is uninstalled at the end.
#
# Source it in tests/k8s/run.sh after checks.sh (it uses helm_install,
# kubectl, node_sh and CHECKS_DIR from there), then call
# run_everything_on_check (CHECKS may name it "everything_on").

EVERYTHING_ON_VALUES=$(cd "$(dirname "${BASH_SOURCE[0]}")/../chart" && pwd)/values-everything-on.yaml

# shellcheck disable=SC2153 # NAMESPACE is set by the runner
check_everything_on() {
  local release=everything namespace=$NAMESPACE-everything status=0 pod ready init hpa node_ip node_port url out
  if ! helm_install "$release" "$namespace" -f "$EVERYTHING_ON_VALUES" >/dev/null; then
    echo "helm install -f values-everything-on.yaml failed"
    kubectl -n "$namespace" get pods -o wide 2>&1 | tail -5
    status=1
  else
    # service2's pods: both containers Ready, the emptyDir and the
    # extraObjects ConfigMap mounted.
    for pod in $(kubectl -n "$namespace" get pods -l "$(s2_selector "$release")" -o name); do
      ready=$(kubectl -n "$namespace" get "$pod" -o jsonpath='{range .status.containerStatuses[*]}{.name}={.ready}{" "}{end}')
      echo "$pod containers: $ready"
      [[ $ready == *"service2=true"* && $ready == *"helper=true"* ]] || status=1
    done
    kubectl -n "$namespace" get configmap "$release-extra" "$release-extra-string" >/dev/null || {
      echo "the extraObjects ConfigMaps are missing"
      status=1
    }
    # service1's pods: the init container ran to completion (exit 0).
    for pod in $(kubectl -n "$namespace" get pods -l "$(s1_selector "$release")" -o name); do
      init=$(kubectl -n "$namespace" get "$pod" -o jsonpath='{.status.initContainerStatuses[0].name}={.status.initContainerStatuses[0].state.terminated.exitCode}')
      echo "$pod init container: $init"
      [[ $init == "version=0" ]] || status=1
    done
    hpa=$(kubectl -n "$namespace" get hpa "$release-service1" -o jsonpath='{.spec.minReplicas}-{.spec.maxReplicas}')
    echo "HPA $release-service1: min-max $hpa"
    [[ $hpa == "2-4" ]] || status=1
    # say-hello through service2's NodePort on the node's address.
    node_ip=$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
    node_port=$(kubectl -n "$namespace" get svc "$release-service2" -o jsonpath='{.spec.type} {.spec.ports[0].nodePort}')
    echo "service $release-service2: $node_port"
    [[ $node_port == NodePort\ * ]] || status=1
    url="http://$node_ip:${node_port#NodePort }/api/v1/say-hello?name=everything"
    reachable "$url" >/dev/null || status=1
    out=$(node_sh "$CHECKS_DIR/load.sh" calls "$url" everything 20)
    echo "20 calls to say-hello through the node port ($node_ip:${node_port#NodePort }): $out"
    [[ $out == "sent 20 failed 0" ]] || status=1
    if out=$(helm test "$release" --namespace "$namespace" --timeout 2m 2>&1); then
      echo "helm test $release: $(grep -m1 -o 'Phase: *[A-Za-z]*' <<<"$out" | tr -s ' ')"
    else
      echo "helm test $release failed: $(tail -1 <<<"$out")"
      status=1
    fi
  fi
  helm uninstall "$release" --namespace "$namespace" --wait >/dev/null 2>&1 || true
  kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
  return $status
}

run_everything_on_check() {
  if [[ -z ${CHECKS:-} || " $CHECKS " == *" everything_on "* ]]; then
    run_check "o. tests/chart/values-everything-on.yaml: init container, sidecar, extraObjects volumes; say-hello through service2's NodePort; helm test" check_everything_on
  fi
}
