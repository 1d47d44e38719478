# shellcheck shell=bash
# The add-on checks of `make test-cluster`: chart features that need
# something besides Kubernetes, each run live against that something built
# from its upstream Go module (tests/k8s/addons/build.sh), nothing pulled
# from a registry:
#
#   operator_crds  prometheus-operator's own PodMonitor and PrometheusRule
#                  CRDs (check l stores the chart's objects in them; this
#                  one shows their schemas are enforced)
#   otel           an OpenTelemetry Collector (core OTLP receiver, debug
#                  exporter) in the cluster; one say-hello's trace over
#                  OTLP/gRPC and OTLP/HTTP, plain and with TLS
#   hpa            metrics-server; the chart's HPA scales service1 up under
#                  load and back down after it
#
# Source it in tests/k8s/run.sh after checks.sh, with ADDONS_BIN_* set from
# tests/k8s/addons/build.sh's output, then call run_addon_checks.

ADDONS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OTELCOL_IMAGE=localhost/otelcol:test
OTEL_NAMESPACE=otel
OTEL_RELEASE=otel
OTEL_APP_NAMESPACE=grpc-services-otel

# --- operator_crds ---------------------------------------------------------------------
# The CRDs themselves are applied by check l (monitoring.sh) before the
# chart's objects; applied here too so this check stands alone (server-side,
# as in monitoring.sh).
apply_operator_crds() {
  kubectl apply --server-side --force-conflicts -f "$ADDONS_BIN_PROMETHEUS_OPERATOR_CRDS" >/dev/null &&
    kubectl wait --for=condition=Established --timeout=60s \
      crd/podmonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com >/dev/null
}

# The chart's PodMonitor and PrometheusRule, with every monitoring value set,
# pass the real schemas (a server-side dry run), and the same objects with
# one field made invalid are refused: the stand-ins accepted anything.
check_operator_crds() {
  local dir=$CHECKS_TMP/operator-crds out status=0
  apply_operator_crds || return 1
  echo "CRDs: $(kubectl get crd podmonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com \
    -o jsonpath='{range .items[*]}{.metadata.name} (controller-gen {.metadata.annotations.controller-gen\.kubebuilder\.io/version}) {end}')"
  mkdir -p "$dir"
  # In default: the dry run needs a namespace that exists whichever checks run.
  helm template "$RELEASE" "$CHART" --namespace default \
    --set monitoring.podMonitor.enabled=true,monitoring.podMonitor.interval=15s \
    --set monitoring.podMonitor.labels.release=kube-prometheus-stack \
    --set monitoring.prometheusRule.enabled=true,monitoring.prometheusRule.labels.release=kube-prometheus-stack \
    --set monitoring.prometheusRule.selector='job="grpc-services"' \
    --show-only templates/podmonitor.yaml --show-only templates/prometheusrule.yaml >"$dir/chart.yaml" || return 1
  python3 - "$dir" <<'PY' || return 1
import json, sys, yaml
d = sys.argv[1]
objects = {o["kind"]: o for o in yaml.safe_load_all(open(f"{d}/chart.yaml")) if o}
# Another name than check l's objects, so that `create` checks them afresh.
for o in objects.values():
    o["metadata"]["name"] += "-schema-check"
json.dump(objects["PodMonitor"], open(f"{d}/podmonitor.json", "w"))
json.dump(objects["PrometheusRule"], open(f"{d}/prometheusrule.json", "w"))
bad = json.loads(json.dumps(objects["PodMonitor"]))
bad["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"
json.dump(bad, open(f"{d}/podmonitor-bad.json", "w"))
bad = json.loads(json.dumps(objects["PrometheusRule"]))
del bad["spec"]["groups"][0]["rules"][0]["expr"]
json.dump(bad, open(f"{d}/prometheusrule-bad.json", "w"))
PY
  for kind in podmonitor prometheusrule; do
    out=$(kubectl create --dry-run=server -n default -f "$dir/$kind.json" 2>&1) || {
      echo "the chart's $kind is refused: $out"
      status=1
      continue
    }
    echo "the chart's $kind is accepted: $out"
    if out=$(kubectl create --dry-run=server -n default -f "$dir/$kind-bad.json" 2>&1); then
      echo "an invalid $kind is accepted too, so the schema is not enforced: $out"
      status=1
    else
      echo "an invalid $kind is refused: $(grep -o 'spec[^,]*' <<<"$out" | head -1)"
    fi
  done
  return $status
}

# --- otel ------------------------------------------------------------------------------
# The collector in its own namespace: OTLP over gRPC (4317) and HTTP (4318)
# in plaintext, and both again with TLS (4319, 4320) on a certificate made
# here, whose CA the release gets in a Secret for otel.tls. One pipeline per
# receiver, each with its own debug exporter, which prints every span
# (verbosity: detailed) to the pod's log, named: otel_trace.py finds them
# there and knows which way they came.
otel_collector_manifest() {
  cat <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: otelcol, namespace: $OTEL_NAMESPACE}
data:
  config.yaml: |
    receivers:
      otlp/grpc:
        protocols:
          grpc: {endpoint: "0.0.0.0:4317"}
      otlp/http:
        protocols:
          http: {endpoint: "0.0.0.0:4318"}
      otlp/grpc-tls:
        protocols:
          grpc:
            endpoint: "0.0.0.0:4319"
            tls: {cert_file: /etc/otelcol/tls/tls.crt, key_file: /etc/otelcol/tls/tls.key}
      otlp/http-tls:
        protocols:
          http:
            endpoint: "0.0.0.0:4320"
            tls: {cert_file: /etc/otelcol/tls/tls.crt, key_file: /etc/otelcol/tls/tls.key}
    exporters:
      debug/grpc: {verbosity: detailed}
      debug/http: {verbosity: detailed}
      debug/grpc-tls: {verbosity: detailed}
      debug/http-tls: {verbosity: detailed}
    service:
      telemetry:
        metrics: {level: none}
      pipelines:
        traces/grpc: {receivers: [otlp/grpc], exporters: [debug/grpc]}
        traces/http: {receivers: [otlp/http], exporters: [debug/http]}
        traces/grpc-tls: {receivers: [otlp/grpc-tls], exporters: [debug/grpc-tls]}
        traces/http-tls: {receivers: [otlp/http-tls], exporters: [debug/http-tls]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: otel-collector, namespace: $OTEL_NAMESPACE}
spec:
  replicas: 1
  selector: {matchLabels: {app: otel-collector}}
  template:
    metadata: {labels: {app: otel-collector}}
    spec:
      containers:
        - name: otelcol
          image: $OTELCOL_IMAGE
          imagePullPolicy: Never
          args: [--config=/etc/otelcol/config.yaml]
          ports:
            - {name: otlp-grpc, containerPort: 4317}
            - {name: otlp-http, containerPort: 4318}
            - {name: otlp-grpc-tls, containerPort: 4319}
            - {name: otlp-http-tls, containerPort: 4320}
          readinessProbe:
            tcpSocket: {port: 4320}
            periodSeconds: 1
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true}
          volumeMounts:
            - {name: config, mountPath: /etc/otelcol/config.yaml, subPath: config.yaml}
            - {name: tls, mountPath: /etc/otelcol/tls, readOnly: true}
      volumes:
        - {name: config, configMap: {name: otelcol}}
        - {name: tls, secret: {secretName: otelcol-tls}}
---
apiVersion: v1
kind: Service
metadata: {name: otel-collector, namespace: $OTEL_NAMESPACE}
spec:
  selector: {app: otel-collector}
  ports:
    - {name: otlp-grpc, port: 4317}
    - {name: otlp-http, port: 4318}
    - {name: otlp-grpc-tls, port: 4319}
    - {name: otlp-http-tls, port: 4320}
YAML
}

otel_start() {
  local ctx dir=$CHECKS_TMP/otel host=otel-collector.$OTEL_NAMESPACE.svc
  ctx=$(mktemp -d)
  cp "$ADDONS_BIN_OTELCOL/otelcol" "$ADDONS_DIR/otelcol/Containerfile" "$ctx/"
  podman build -q -t "$OTELCOL_IMAGE" "$ctx" >/dev/null || return 1
  rm -rf "$ctx"
  "$ADDONS_DIR/../cluster.sh" import "$OTELCOL_IMAGE" || return 1
  # A CA and the collector's certificate for its Service name.
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=otel-test-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$host" \
      -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null &&
    openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 1 \
      -extfile <(printf 'subjectAltName=DNS:%s,DNS:%s.cluster.local\nextendedKeyUsage=serverAuth\n' "$host" "$host") \
      -out "$dir/tls.crt" 2>/dev/null || return 1
  chmod 644 "$dir/tls.key" # read by the collector's non-root user through the Secret
  kubectl create namespace "$OTEL_NAMESPACE" >/dev/null &&
    kubectl -n "$OTEL_NAMESPACE" create secret tls otelcol-tls --cert "$dir/tls.crt" --key "$dir/tls.key" >/dev/null &&
    kubectl create namespace "$OTEL_APP_NAMESPACE" >/dev/null &&
    kubectl -n "$OTEL_APP_NAMESPACE" create secret generic otel-collector-ca --from-file=ca.crt="$dir/ca.crt" >/dev/null &&
    otel_collector_manifest | kubectl apply -f - >/dev/null || return 1
  kubectl -n "$OTEL_NAMESPACE" rollout status deploy/otel-collector --timeout=120s >/dev/null || {
    kubectl -n "$OTEL_NAMESPACE" logs deploy/otel-collector --tail=5 2>&1
    return 1
  }
  echo "collector: $(kubectl -n "$OTEL_NAMESPACE" logs deploy/otel-collector | grep -o 'Everything is ready[^{]*' | head -1)"
}

# check_otel_export RECEIVER PROTOCOL ENDPOINT [TLS_SECRET]: the release
# exports to ENDPOINT; one say-hello with a fresh request id gives one trace
# in the collector with service2's server and client spans and service1's
# server span, from the release's pods of this revision, all through the
# collector's RECEIVER (grpc, http, grpc-tls, http-tls).
check_otel_export() {
  local receiver=$1 protocol=$2 endpoint=$3 secret=${4:-} request_id url i out
  request_id=otel-$receiver-$RANDOM$RANDOM
  helm_install "$OTEL_RELEASE" "$OTEL_APP_NAMESPACE" \
    --set service1.replicas=2,service2.replicas=1 \
    --set otel.endpoint="$endpoint",otel.protocol="$protocol",otel.tls.secretName="$secret" >/dev/null || return 1
  # --wait returns once the new pods are Ready; the old ones drain a while
  # longer and could still take the call.
  for ((i = 0; i < 120; i++)); do
    [[ $(kubectl -n "$OTEL_APP_NAMESPACE" get pods -l app.kubernetes.io/instance=$OTEL_RELEASE -o name | wc -l) == 3 ]] && break
    sleep 1
  done
  kubectl -n "$OTEL_APP_NAMESPACE" get pods -o json >"$CHECKS_TMP/otel/pods.json" || return 1
  url=$(service_url "$OTEL_APP_NAMESPACE" "$OTEL_RELEASE-service2" /api/v1/say-hello?name=otel)
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(node_sh -c 'curl -s -o /dev/null -w "%{http_code}" -H "X-Request-ID: $2" "$1"' _ "$url" "$request_id")
  echo "say-hello with X-Request-ID $request_id, spans over $protocol to $endpoint: HTTP $out"
  [[ $out == 200 ]] || return 1
  # Spans leave in batches (every 5 s by default, OTEL_BSP_SCHEDULE_DELAY).
  for ((i = 0; i < 30; i++)); do
    kubectl -n "$OTEL_NAMESPACE" logs deploy/otel-collector >"$CHECKS_TMP/otel/collector.log" 2>&1 || true
    out=$(python3 "$ADDONS_DIR/otel_trace.py" "$request_id" "$OTEL_APP_NAMESPACE" "$CHECKS_TMP/otel/pods.json" "debug/$receiver" \
      <"$CHECKS_TMP/otel/collector.log") && {
      echo "$out"
      return 0
    }
    sleep 1
  done
  echo "$out"
  return 1
}

otel_stop() {
  helm uninstall "$OTEL_RELEASE" --namespace "$OTEL_APP_NAMESPACE" --wait >/dev/null 2>&1
  kubectl delete namespace "$OTEL_APP_NAMESPACE" "$OTEL_NAMESPACE" --timeout=120s >/dev/null 2>&1
  return 0
}

# --- hpa -------------------------------------------------------------------------------
# metrics-server as a host process in the cluster's namespace (an add-on of
# cluster.sh, like kube-router), registered as the metrics.k8s.io API: the
# API server proxies to it with its front-proxy client certificate, and it
# scrapes the kubelet's /metrics/resource with a client certificate of its
# own. The HPA controller in kube-controller-manager reads it from there.
METRICS_SERVER_PORT=4443
ADDONS_NODE_IP=10.213.0.2 # cluster.sh's node address

metrics_server_manifest() {
  cat <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
  - {apiGroups: [""], resources: [nodes/metrics], verbs: [get]}
  - {apiGroups: [""], resources: [pods, nodes], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metrics-server:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: metrics-server-auth-reader, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:metrics-server"}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec:
  ports: [{name: https, port: 443, targetPort: $METRICS_SERVER_PORT}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: metrics-server}
addressType: IPv4
ports: [{name: https, port: $METRICS_SERVER_PORT, protocol: TCP}]
endpoints: [{addresses: ["$ADDONS_NODE_IP"], conditions: {ready: true}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: 443}
  # Its serving certificate is self-signed, as in upstream's manifest.
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
}

metrics_server_start() {
  local i cluster_sh=$ADDONS_DIR/../cluster.sh
  "$cluster_sh" client metrics-server system:metrics-server || return 1
  metrics_server_manifest | kubectl apply -f - >/dev/null || return 1
  "$cluster_sh" add-on metrics-server "$ADDONS_BIN_METRICS_SERVER/metrics-server" \
    --bind-address="$ADDONS_NODE_IP" --secure-port="$METRICS_SERVER_PORT" --cert-dir="$STATE/metrics-server" \
    --kubeconfig="$STATE/metrics-server.kubeconfig" \
    --authentication-kubeconfig="$STATE/metrics-server.kubeconfig" \
    --authorization-kubeconfig="$STATE/metrics-server.kubeconfig" \
    --kubelet-preferred-address-types=InternalIP --kubelet-certificate-authority="$STATE/pki/ca.crt" \
    --metric-resolution=15s --kubelet-request-timeout=5s || return 1
  for ((i = 0; i < 120; i++)); do
    kubectl top nodes --no-headers >"$CHECKS_TMP/top" 2>&1 && break
    kill -0 "$(cat "$STATE/pids/metrics-server")" 2>/dev/null || break
    sleep 1
  done
  kubectl top nodes --no-headers >"$CHECKS_TMP/top" 2>&1 || {
    echo "metrics.k8s.io does not answer: $(tail -1 "$CHECKS_TMP/top") (log: $STATE/logs/metrics-server.log)"
    tail -5 "$STATE/logs/metrics-server.log"
    return 1
  }
  echo "kubectl top nodes: $(cat "$CHECKS_TMP/top")"
}

# hpa_state: "replicas R ready N cpu C%" of the HPA release's service1.
hpa_state() {
  kubectl -n "$HPA_NAMESPACE" get hpa "$HPA_RELEASE-service1" \
    -o jsonpath='replicas {.status.currentReplicas} desired {.status.desiredReplicas} cpu {.status.currentMetrics[0].resource.current.averageUtilization}%'
  echo " ready $(kubectl -n "$HPA_NAMESPACE" get deploy "$HPA_RELEASE-service1" -o jsonpath='{.status.readyReplicas}')"
}

# wait_replicas WANT SECONDS: polls every 5 s, printing the state, until
# service1 has WANT ready replicas and the HPA wants that many; WANT "2+":
# at least 2.
wait_replicas() {
  local want=$1 seconds=$2 start=$SECONDS now desired ready
  while ((SECONDS - start < seconds)); do
    now=$(hpa_state)
    echo "  +$((SECONDS - HPA_T0))s $now"
    desired=$(sed -n 's/.*desired \([0-9]*\) .*/\1/p' <<<"$now")
    ready=${now##* ready }
    if [[ $want == *+ ]]; then
      ((${desired:-0} >= ${want%+} && ready == desired)) && return 0
    else
      ((${desired:-0} == want && ready == want)) && return 0
    fi
    sleep 5
  done
  return 1
}

# every_pod_served: every service1 pod of the HPA release has load calls in
# its log (printed), polled while the load goes on, up to 60 s, since
# service2 finds a new replica at its next DNS lookup.
every_pod_served() {
  local i pod hits all out
  for ((i = 0; i < 12; i++)); do
    all=1 out=""
    for pod in $(kubectl -n "$HPA_NAMESPACE" get pods -l "$(s1_selector "$HPA_RELEASE")" -o name); do
      hits=$(kubectl -n "$HPA_NAMESPACE" logs "$pod" | grep -c '"request_id":"load-')
      out+="  ${pod#pod/}: $hits load calls"$'\n'
      ((hits > 0)) || all=0
    done
    ((all)) && break
    sleep 5
  done
  printf '%s' "$out"
  ((all))
}

HPA_NAMESPACE=grpc-services-hpa
HPA_RELEASE=hpa
HPA_MAX=3

# Under load the HPA adds service1 replicas (1 to at most HPA_MAX), service2
# calls every one of them, and after the load it scales back to 1; a
# trickle of calls goes on meanwhile. Zero failed requests throughout.
check_hpa() {
  local url stop=/tmp/grpc-services-hpa-stop-$$ trickle_stop=/tmp/grpc-services-hpa-trickle-$$ status=0
  HPA_T0=$SECONDS
  helm_install "$HPA_RELEASE" "$HPA_NAMESPACE" --set service2.replicas=1 \
    --set service1.autoscaling.enabled=true,service1.autoscaling.minReplicas=1,service1.autoscaling.maxReplicas=$HPA_MAX \
    --set service1.autoscaling.targetCPUUtilizationPercentage=20 \
    --set-json 'service1.autoscaling.behavior={"scaleUp":{"stabilizationWindowSeconds":0,"policies":[{"type":"Pods","value":2,"periodSeconds":10}]},"scaleDown":{"stabilizationWindowSeconds":15,"policies":[{"type":"Percent","value":100,"periodSeconds":10}]}}' \
    >/dev/null || return 1
  url=$(service_url "$HPA_NAMESPACE" "$HPA_RELEASE-service2" /api/v1/say-hello?name=hpa)
  echo "idle, then load (two calls at a time) through service2:"
  wait_replicas 1 60 || return 1
  rm -f "$stop" "$trickle_stop"
  node_sh "$CHECKS_DIR/load.sh" until "$url" "$stop" >"$CHECKS_TMP/hpa-load.out" &
  # Scaled up: more than the one replica there was (up to HPA_MAX, as far
  # as the load drives the CPU on a shared machine).
  wait_replicas 2+ 300 || status=1
  every_pod_served || status=1
  node_touch "$stop"
  wait
  echo "load: $(cat "$CHECKS_TMP/hpa-load.out")"
  grep -q ' failed 0 ' "$CHECKS_TMP/hpa-load.out" || status=1
  echo "after the load (one call every 0.2 s meanwhile):"
  # shellcheck disable=SC2016 # expanded by the inner bash
  node_sh -c 'sent=0 failed=0; while [[ ! -e $2 ]] && ((sent < 3000)); do
      code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 -H "X-Request-ID: trickle-$sent" "$1")
      sent=$((sent + 1)); [[ $code == 200 ]] || failed=$((failed + 1)); sleep 0.2
    done; echo "sent $sent failed $failed"' _ "$url" "$trickle_stop" >"$CHECKS_TMP/hpa-trickle.out" &
  wait_replicas 1 240 || status=1
  node_touch "$trickle_stop"
  wait
  echo "trickle: $(cat "$CHECKS_TMP/hpa-trickle.out")"
  grep -q ' failed 0$' "$CHECKS_TMP/hpa-trickle.out" || status=1
  rm -f "$stop" "$trickle_stop"
  helm uninstall "$HPA_RELEASE" --namespace "$HPA_NAMESPACE" --wait >/dev/null 2>&1
  return $status
}

# run_addon_checks: every add-on check, or those named in $CHECKS.
run_addon_checks() {
  local host=otel-collector.$OTEL_NAMESPACE.svc
  addon_wanted() { [[ -z ${CHECKS:-} || " $CHECKS " == *" $1 "* ]]; }
  if addon_wanted operator_crds; then
    run_check "A1. prometheus-operator's own CRDs (v$(basename "$ADDONS_BIN_PROMETHEUS_OPERATOR_CRDS" | sed 's/.*-v//')): the chart's PodMonitor and PrometheusRule pass their schemas, invalid ones are refused" check_operator_crds
  fi
  if addon_wanted otel; then
    # shellcheck disable=SC2154 # checks.sh's counter
    local failed_before=$checks_failed
    run_check "A2. an OpenTelemetry Collector ($(basename "$ADDONS_BIN_OTELCOL")) runs in the cluster with OTLP receivers, plain and TLS" otel_start
    if ((checks_failed == failed_before)); then
      run_check "A2. OTLP/gRPC to the collector: one trace with spans from a service2 and a service1 pod, request id and k8s attributes on each" \
        check_otel_export grpc grpc "http://$host:4317"
      run_check "A2. OTLP/HTTP (protobuf) to the collector: the same" check_otel_export http http/protobuf "http://$host:4318"
      run_check "A2. OTLP/gRPC over TLS (otel.tls.secretName: the collector's CA): the same" \
        check_otel_export grpc-tls grpc "https://$host:4319" otel-collector-ca
      run_check "A2. OTLP/HTTP over TLS: the same" \
        check_otel_export http-tls http/protobuf "https://$host:4320" otel-collector-ca
    fi
    otel_stop
  fi
  if addon_wanted hpa; then
    local failed_before=$checks_failed
    run_check "A3. metrics-server ($(basename "$ADDONS_BIN_METRICS_SERVER")) serves metrics.k8s.io through the aggregation layer" metrics_server_start
    if ((checks_failed == failed_before)); then
      run_check "A3. autoscaling.enabled: load makes the HPA add service1 replicas, service2 calls each; then back to 1; no failed request" check_hpa
    fi
  fi
}
