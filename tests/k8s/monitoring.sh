# shellcheck shell=bash
# Check l: the chart's monitoring objects, live. No prometheus-operator runs
# (it is an image we cannot pull); instead:
#
#  1. prometheus-operator's own PodMonitor and PrometheusRule CRDs (generated
#     from its API module: tests/k8s/addons/build.sh), so the API server
#     checks and stores what the chart makes;
#  2. helm upgrade with monitoring.podMonitor, .prometheusRule and
#     .grafanaDashboard on;
#  3. a Prometheus (Debian's, a host process in the cluster's network
#     namespace, an add-on of cluster.sh) configured from the PodMonitor and
#     PrometheusRule read back from the API server, as the operator would
#     (tests/prometheus/cluster.py config). Debian builds Prometheus without
#     Kubernetes discovery, so a file lists the namespace's pods with the
#     labels discovery would give them, and Prometheus applies the
#     PodMonitor's selection to them;
#  4. tests/prometheus/cluster.py check: every pod scraped, say-hello calls,
#     every query of the dashboard ConfigMap gives a number, every alert
#     evaluates.
#
# Source it in tests/k8s/run.sh after checks.sh, with STATE exported, ROOT
# and ADDONS_BIN_PROMETHEUS_OPERATOR_CRDS set, then: run_check "l. ..." check_monitoring

MONITORING_SH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Prometheus listens on the cluster namespace's loopback only.
PROMETHEUS_URL=http://127.0.0.1:19090

# Ready pods of both services: their names, space-separated.
ready_pods() {
  kubectl -n "$NAMESPACE" get pods -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component in (service1,service2)" \
    -o jsonpath='{range .items[?(@.status.containerStatuses[0].ready==true)]}{.metadata.name}{" "}{end}'
}

check_monitoring() {
  local dir=$STATE/prometheus i pods url rules
  command -v prometheus >/dev/null || {
    echo "no prometheus on PATH (apt-get install prometheus)"
    return 1
  }
  # Server-side, as prometheus-operator installs its CRDs (the bigger ones
  # overflow client-side apply's last-applied annotation).
  kubectl apply --server-side --force-conflicts -f "$ADDONS_BIN_PROMETHEUS_OPERATOR_CRDS" >/dev/null &&
    kubectl wait --for=condition=Established --timeout=60s \
      crd/podmonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com >/dev/null || return 1
  helm_install "$RELEASE" "$NAMESPACE" --reuse-values \
    --set monitoring.podMonitor.enabled=true,monitoring.podMonitor.interval=2s \
    --set monitoring.prometheusRule.enabled=true,monitoring.grafanaDashboard.enabled=true >/dev/null || return 1

  rm -rf "$dir" && mkdir -p "$dir"
  kubectl -n "$NAMESPACE" get podmonitor "$RELEASE" -o json >"$dir/podmonitor.json" &&
    kubectl -n "$NAMESPACE" get prometheusrule "$RELEASE" -o json >"$dir/prometheusrule.json" &&
    kubectl -n "$NAMESPACE" get configmap "$RELEASE-dashboard" -o json >"$dir/dashboard.json" || return 1
  rules=$(python3 -c 'import json, sys
spec = json.load(open(sys.argv[1]))["spec"]
print(sum(1 for g in spec["groups"] for r in g["rules"] if "alert" in r))' "$dir/prometheusrule.json")
  echo "from the API server: PodMonitor $RELEASE, PrometheusRule $RELEASE ($rules alerts), the dashboard ConfigMap"

  kubectl -n "$NAMESPACE" get pods -o json >"$dir/pods.json" || return 1
  python3 "$ROOT/tests/prometheus/cluster.py" config "$dir/podmonitor.json" "$dir/prometheusrule.json" \
    "$dir/pods.json" "$dir" || return 1
  "$MONITORING_SH_DIR/cluster.sh" add-on prometheus prometheus --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" --web.listen-address="${PROMETHEUS_URL#http://}" --log.level=warn || return 1
  for ((i = 0; i < 60; i++)); do
    "$MONITORING_SH_DIR/cluster.sh" exec curl -sf "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1 && break
    kill -0 "$(cat "$STATE/pids/prometheus")" 2>/dev/null || break
    sleep 0.5
  done
  "$MONITORING_SH_DIR/cluster.sh" exec curl -sf "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1 || {
    echo "prometheus is not up (log: $STATE/logs/prometheus.log):"
    tail -5 "$STATE/logs/prometheus.log"
    return 1
  }

  pods=$(ready_pods)
  url=$(service_url "$NAMESPACE" "$RELEASE-service2" /api/v1/say-hello?name=monitoring)
  "$MONITORING_SH_DIR/cluster.sh" exec python3 "$ROOT/tests/prometheus/cluster.py" check \
    --prometheus "$PROMETHEUS_URL" --namespace "$NAMESPACE" --pods "$pods" \
    --dashboard "$dir/dashboard.json" --rules "$rules" --say-hello "$url" || {
    echo "prometheus log: $STATE/logs/prometheus.log"
    return 1
  }
}
