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
#   cert_manager   cert-manager's controller (our wiring of its packages,
#                  ./cert-manager); tls.mode=certManager with the chart's own
#                  CA chain and with caSecretName, a renewal of both leaves
#                  under load, and tls.spiffeOnly
#   ingress        Traefik (./traefik) with its kubernetesIngress and
#                  kubernetesGateway providers, and the Gateway API's
#                  standard CRDs: say-hello through service2.ingress, then
#                  through service2.httpRoute
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
  local receiver=$1 protocol=$2 endpoint=$3 secret=${4:-} request_id url i out pods
  request_id=otel-$receiver-$RANDOM$RANDOM
  helm_install "$OTEL_RELEASE" "$OTEL_APP_NAMESPACE" \
    --set service1.replicas=2,service2.replicas=1 \
    --set otel.endpoint="$endpoint",otel.protocol="$protocol",otel.tls.secretName="$secret" >/dev/null || return 1
  # --wait returns once the new pods are Ready; the old ones drain a while
  # longer and could still take the call.
  for ((i = 0; i < 120; i++)); do
    pods=$(kubectl -n "$OTEL_APP_NAMESPACE" get pods -l app.kubernetes.io/instance=$OTEL_RELEASE -o name | wc -l)
    ((pods == 3)) && break
    sleep 1
  done
  ((pods == 3)) || {
    echo "$pods pods of release $OTEL_RELEASE after 120 s, not the 3 of this revision"
    return 1
  }
  kubectl -n "$OTEL_APP_NAMESPACE" get pods -o json >"$CHECKS_TMP/otel/pods.json" || return 1
  url=$(service_url "$OTEL_APP_NAMESPACE" "$OTEL_RELEASE-service2" /api/v1/say-hello?name=otel)
  # A fresh install's Service answers a moment after its pods are Ready
  # (kube-proxy); the calls this waits with have request ids of their own.
  out=$(reachable "$url") || {
    echo "service2's Service: $out"
    return 1
  }
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(node_sh -c 'curl -s -o /dev/null -w "%{http_code}" --max-time 10 -H "X-Request-ID: $2" "$1"' _ "$url" "$request_id")
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

# user_binding NAME ROLE USER: a ClusterRoleBinding of the ClusterRole ROLE
# to USER, the name in an add-on's own client certificate (each add-on runs
# as a user of its own, not as the cluster's admin).
user_binding() {
  cat <<YAML
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "$1"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "$2"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "$3"}]
YAML
}

metrics_server_manifest() {
  cat <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
  - {apiGroups: [""], resources: [nodes/metrics], verbs: [get]}
  - {apiGroups: [""], resources: [pods, nodes], verbs: [get, list, watch]}
YAML
  user_binding "system:metrics-server" "system:metrics-server" "system:metrics-server"
  user_binding "metrics-server:system:auth-delegator" "system:auth-delegator" "system:metrics-server"
  cat <<YAML
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
  local url stop trickle_stop status=0
  stop=$(load_stop_name) trickle_stop=$(load_stop_name)-trickle
  HPA_T0=$SECONDS
  helm_install "$HPA_RELEASE" "$HPA_NAMESPACE" --set service2.replicas=1 \
    --set service1.autoscaling.enabled=true,service1.autoscaling.minReplicas=1,service1.autoscaling.maxReplicas=$HPA_MAX \
    --set service1.autoscaling.targetCPUUtilizationPercentage=20 \
    --set-json 'service1.autoscaling.behavior={"scaleUp":{"stabilizationWindowSeconds":0,"policies":[{"type":"Pods","value":2,"periodSeconds":10}]},"scaleDown":{"stabilizationWindowSeconds":15,"policies":[{"type":"Percent","value":100,"periodSeconds":10}]}}' \
    >/dev/null || return 1
  url=$(service_url "$HPA_NAMESPACE" "$HPA_RELEASE-service2" /api/v1/say-hello?name=hpa)
  echo "idle, then load (two calls at a time) through service2:"
  wait_replicas 1 120 || return 1
  reachable "$url" >/dev/null || return 1
  node_sh "$CHECKS_DIR/load.sh" until "$url" "$stop" >"$CHECKS_TMP/hpa-load.out" &
  # Scaled up: more than the one replica there was (up to HPA_MAX, as far
  # as the load drives the CPU on a shared machine).
  wait_replicas 2+ 300 || status=1
  every_pod_served || status=1
  node_touch "$stop"
  wait
  echo "load: $(cat "$CHECKS_TMP/hpa-load.out")"
  grep -q '^sent [1-9][0-9]* failed 0 ' "$CHECKS_TMP/hpa-load.out" || status=1
  echo "after the load (one call every 0.2 s meanwhile):"
  # shellcheck disable=SC2016 # expanded by the inner bash
  node_sh -c 'sent=0 failed=0; while [[ ! -e $2 ]] && ((sent < 3000 && SECONDS < 600)); do
      code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 -H "X-Request-ID: trickle-$sent" "$1")
      sent=$((sent + 1)); [[ $code == 200 ]] || failed=$((failed + 1)); sleep 0.2
    done; echo "sent $sent failed $failed"' _ "$url" "$trickle_stop" >"$CHECKS_TMP/hpa-trickle.out" &
  wait_replicas 1 240 || status=1
  node_touch "$trickle_stop"
  wait
  echo "trickle: $(cat "$CHECKS_TMP/hpa-trickle.out")"
  grep -q '^sent [1-9][0-9]* failed 0$' "$CHECKS_TMP/hpa-trickle.out" || status=1
  rm -f "$trickle_stop"
  helm uninstall "$HPA_RELEASE" --namespace "$HPA_NAMESPACE" --wait >/dev/null 2>&1
  return $status
}

# --- cert_manager ----------------------------------------------------------------------
# cert-manager's controller as a host process in node 1's namespace (an
# add-on of cluster.sh, like metrics-server), as the user
# system:cert-manager with the rights upstream's chart gives the
# controllers we run; the cert-manager.io CRDs from the module's deploy/crds.
# No webhook: see tests/k8s/README.md for what that skips.
CM_NAMESPACE=grpc-services-cm
CM_RELEASE=cm
CM_CA_NAMESPACE=grpc-services-cm-ca
CM_CA_RELEASE=cmca
CM_GRPC_PORT=50051

cert_manager_rbac() {
  cat <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:cert-manager"}
rules:
  - apiGroups: [cert-manager.io]
    resources: [certificates, certificaterequests, issuers, clusterissuers]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [cert-manager.io]
    resources: [certificates/status, certificaterequests/status, issuers/status, clusterissuers/status]
    verbs: [update, patch]
  - apiGroups: [cert-manager.io]
    resources: [certificates/finalizers, certificaterequests/finalizers]
    verbs: [update]
  - apiGroups: [cert-manager.io]
    resources: [signers]
    verbs: [approve]
    resourceNames: ["issuers.cert-manager.io/*", "clusterissuers.cert-manager.io/*"]
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
YAML
  user_binding "system:cert-manager" "system:cert-manager" "system:cert-manager"
}

cert_manager_start() {
  local i cluster_sh=$ADDONS_DIR/../cluster.sh log=$STATE/logs/cert-manager.log
  # Server-side: the Issuer and ClusterIssuer CRDs (330 kB each) do not fit
  # client-side apply's last-applied annotation (256 kB).
  kubectl apply --server-side -f "$ADDONS_BIN_CERT_MANAGER/crds" >/dev/null &&
    kubectl wait --for=condition=Established --timeout=60s crd/certificates.cert-manager.io \
      crd/certificaterequests.cert-manager.io crd/issuers.cert-manager.io crd/clusterissuers.cert-manager.io >/dev/null ||
    return 1
  "$cluster_sh" client cert-manager system:cert-manager || return 1
  cert_manager_rbac | kubectl apply -f - >/dev/null || return 1
  # One controller only (no leader election): a kept cluster may have one.
  if ! kill -0 "$(cat "$STATE/pids/cert-manager" 2>/dev/null)" 2>/dev/null; then
    "$cluster_sh" add-on cert-manager "$ADDONS_BIN_CERT_MANAGER/cert-manager-controller" \
      --kubeconfig="$STATE/cert-manager.kubeconfig" --v=2 || return 1
  fi
  for ((i = 0; i < 120; i++)); do
    grep -q 'cert-manager controllers started' "$log" 2>/dev/null && break
    kill -0 "$(cat "$STATE/pids/cert-manager")" 2>/dev/null || break
    sleep 0.5
  done
  grep -q 'cert-manager controllers started' "$log" 2>/dev/null || {
    echo "the controller did not start (log: $log)"
    tail -5 "$log"
    return 1
  }
  echo "CRDs: $(kubectl get crd -o name | grep -c 'cert-manager\.io$') of cert-manager.io (controller-gen $(kubectl get crd \
    certificates.cert-manager.io -o jsonpath='{.metadata.annotations.controller-gen\.kubebuilder\.io/version}'))"
  echo "controller: $(grep -o 'controllers=\[[^]]*\]' "$log" | head -1)"
}

# serial_of: the serial of the PEM certificate on stdin, lowercase hex
# without leading zeros (the services print the DER bytes, openssl the number).
serial_of() { openssl x509 -noout -serial | sed 's/^serial=//; s/^0*//' | tr 'A-F' 'a-f'; }

# secret_file NAMESPACE SECRET KEY FILE: one key of a Secret, decoded, to FILE.
secret_file() {
  local key=${3//./\\.}
  kubectl -n "$1" get secret "$2" -o jsonpath="{.data.$key}" | base64 -d >"$4"
}

# readyz_serial NAMESPACE POD PORT: the serial the pod's /readyz says it has
# loaded (what its next handshake presents).
readyz_serial() {
  readyz "$1" "$2" "$3" | python3 -c 'import json, sys; print(json.load(sys.stdin)["tls"]["serial"].lstrip("0"))' 2>/dev/null
}

# wire_serial IP SERVER_NAME DIR: the serial of the certificate a service1
# pod presents in a TLS handshake on its gRPC port (openssl s_client from
# the node, verified against the release's CA for SERVER_NAME, with
# service2's client certificate from DIR).
wire_serial() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  node_sh -c 'timeout 10 openssl s_client -connect "$1:$2" -servername "$3" -verify_hostname "$3" -verify_return_error -alpn h2 \
      -CAfile "$4/ca.crt" -cert "$4/s2.crt" -key "$4/s2.key" </dev/null 2>/dev/null |
    openssl x509 -noout -serial' _ "$1" "$CM_GRPC_PORT" "$2" "$3" | sed 's/^serial=//; s/^0*//' | tr 'A-F' 'a-f'
}

# grpc_status IP NAME CERT KEY CA [BODY]: the grpc-status of a
# grpc.health.v1.Health/Check to a service1 pod's gRPC port, made with the
# client certificate CERT (curl over HTTP/2 from the node), or curl-exit-N
# when no answer came (35: the TLS handshake was refused).
#
# BODY "message" (the default) sends the empty HealthCheckRequest: an
# allowed caller gets 0. BODY "none" sends the headers alone, for a caller
# that must be refused: service1 answers PermissionDenied (7) before it reads
# a body, then resets the still-open request stream with NO_ERROR (RFC 9113
# 8.1, as grpc-go does). curl 7.88 (Debian 12) loses an answer that arrives
# before its body is sent (the family of curl/curl#22984): 137 of 200 such
# calls on loopback exited 92 with no status, and failed A4 in CI. A request
# without a body has ended before the answer comes (300 of 300 read 7). An
# allowed caller would get 13 (Missing request message), so the refusal is
# still told apart.
grpc_status() {
  local out status body=()
  [[ ${6:-message} == none ]] || body=(--data-binary @-)
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(node_sh -c 'printf "\0\0\0\0\0" | curl -s --http2 -X POST --max-time 10 --resolve "$2:$3:$1" \
      --cacert "$6" --cert "$4" --key "$5" -H "content-type: application/grpc" -H "te: trailers" \
      "${@:7}" -o /dev/null -D - "https://$2:$3/grpc.health.v1.Health/Check"; echo "curl-exit-$?"' \
    _ "$1" "$2" "$CM_GRPC_PORT" "$3" "$4" "$5" "${body[@]}" | tr -d '\r')
  status=$(sed -n 's/^grpc-status: *//p' <<<"$out" | tail -1)
  echo "${status:-$(grep -o 'curl-exit-[0-9]*' <<<"$out" | tail -1)}"
}

# cm_say_hello NAMESPACE RELEASE: 20 say-hello calls through service2's
# ClusterIP, every one over service2's mTLS calls to service1.
cm_say_hello() {
  local url out
  url=$(service_url "$1" "$2-service2" /api/v1/say-hello?name=cert-manager)
  # A fresh install's Service answers a moment after its pods are Ready.
  out=$(reachable "$url") || {
    echo "service2's Service: $out"
    return 1
  }
  out=$(node_sh "$CHECKS_DIR/load.sh" calls "$url" "cm-$RANDOM" 20)
  echo "say-hello through service2: $out"
  [[ $out == "sent 20 failed 0" ]]
}

# cm_describe NAMESPACE SECRET: subject, issuer and SANs of a leaf.
cm_describe() {
  kubectl -n "$1" get secret "$2" -o jsonpath='{.data.tls\.crt}' | base64 -d |
    openssl x509 -noout -subject -issuer -ext subjectAltName 2>/dev/null | tr -s ' \n' ' '
}

# tls.mode=certManager with the chart's own chain: a self-signed Issuer, a
# CA Certificate from it, a CA Issuer from that, which issues both leaves.
# service1.maxConnectionAgeSeconds=10: service2 reconnects (new handshakes
# on both sides) within seconds, which the renewal check relies on.
check_cert_manager_install() {
  local s1 s2
  helm_install "$CM_RELEASE" "$CM_NAMESPACE" --set tls.mode=certManager \
    --set service1.replicas=2,service2.replicas=2,service1.maxConnectionAgeSeconds=10 >/dev/null || {
    kubectl -n "$CM_NAMESPACE" get certificates,certificaterequests,issuers 2>&1 | tail -8
    return 1
  }
  kubectl -n "$CM_NAMESPACE" get certificates -o \
    jsonpath='{range .items[*]}Certificate {.metadata.name}: Ready={.status.conditions[?(@.type=="Ready")].status} by {.spec.issuerRef.kind}/{.spec.issuerRef.name}{"\n"}{end}'
  echo "service1 leaf: $(cm_describe "$CM_NAMESPACE" "$CM_RELEASE-service1-tls")"
  echo "service2 leaf: $(cm_describe "$CM_NAMESPACE" "$CM_RELEASE-service2-tls")"
  s1=$(kubectl -n "$CM_NAMESPACE" get pods -l "$(s1_selector "$CM_RELEASE")" -o jsonpath='{range .items[*]}{.status.containerStatuses[0].ready}{" "}{end}')
  s2=$(kubectl -n "$CM_NAMESPACE" get pods -l "$(s2_selector "$CM_RELEASE")" -o jsonpath='{range .items[*]}{.status.containerStatuses[0].ready}{" "}{end}')
  echo "service1 pods ready: $s1; service2 pods ready: $s2"
  [[ $s1 == "true true " && $s2 == "true true " ]] || return 1
  cm_say_hello "$CM_NAMESPACE" "$CM_RELEASE"
}

# tls.certManager.caSecretName: a CA of ours (a self-signed root made here)
# in a Secret; the chart makes a CA Issuer from it and cert-manager issues
# the leaves, which chain to that root.
check_cert_manager_ca_secret() {
  local dir=$CHECKS_TMP/cm-ca status=0 verified
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=grpc-services-test-root \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null || return 1
  kubectl create namespace "$CM_CA_NAMESPACE" >/dev/null &&
    kubectl -n "$CM_CA_NAMESPACE" create secret tls our-root-ca --cert "$dir/ca.crt" --key "$dir/ca.key" >/dev/null || return 1
  if helm_install "$CM_CA_RELEASE" "$CM_CA_NAMESPACE" --set tls.mode=certManager \
    --set tls.certManager.caSecretName=our-root-ca --set service1.replicas=2,service2.replicas=1 >/dev/null; then
    secret_file "$CM_CA_NAMESPACE" "$CM_CA_RELEASE-service1-tls" tls.crt "$dir/s1.crt"
    secret_file "$CM_CA_NAMESPACE" "$CM_CA_RELEASE-service2-tls" tls.crt "$dir/s2.crt"
    verified=$(openssl verify -CAfile "$dir/ca.crt" "$dir/s1.crt" "$dir/s2.crt" 2>&1 | tr '\n' ' ')
    echo "Issuer $CM_CA_RELEASE-ca from Secret our-root-ca: $(kubectl -n "$CM_CA_NAMESPACE" get issuer "$CM_CA_RELEASE-ca" \
      -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')"
    echo "both leaves verify against our root: $verified"
    [[ $verified == *"s1.crt: OK"*"s2.crt: OK"* ]] || status=1
    cm_say_hello "$CM_CA_NAMESPACE" "$CM_CA_RELEASE" || status=1
  else
    kubectl -n "$CM_CA_NAMESPACE" get certificates,issuers 2>&1 | tail -5
    status=1
  fi
  helm uninstall "$CM_CA_RELEASE" --namespace "$CM_CA_NAMESPACE" --wait >/dev/null 2>&1
  kubectl delete namespace "$CM_CA_NAMESPACE" --wait=false >/dev/null 2>&1
  return $status
}

# renew_certificate NAMESPACE NAME: what `cmctl renew` does: the Issuing
# condition, reason ManuallyTriggered, on the Certificate's status.
renew_certificate() {
  local generation now
  generation=$(kubectl -n "$1" get certificate "$2" -o jsonpath='{.metadata.generation}')
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  kubectl -n "$1" patch certificate "$2" --subresource=status --type=json -p "[{\"op\": \"add\",
    \"path\": \"/status/conditions/-\", \"value\": {\"type\": \"Issuing\", \"status\": \"True\",
    \"reason\": \"ManuallyTriggered\", \"message\": \"Certificate re-issuance manually triggered\",
    \"lastTransitionTime\": \"$now\", \"observedGeneration\": $generation}}]" >/dev/null
}

# cm_pods: "pod=restarts" of every pod of the release, sorted.
cm_pods() {
  kubectl -n "$CM_NAMESPACE" get pods -l "app.kubernetes.io/instance=$CM_RELEASE" \
    -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount}{"\n"}{end}' | sort
}

# pod_serials: "pod serial" for every pod of the release, from /readyz.
pod_serials() {
  local pod
  for pod in $(kubectl -n "$CM_NAMESPACE" get pods -l "$(s1_selector "$CM_RELEASE")" -o name); do
    echo "${pod#pod/} $(readyz_serial "$CM_NAMESPACE" "${pod#pod/}" 9080)"
  done
  for pod in $(kubectl -n "$CM_NAMESPACE" get pods -l "$(s2_selector "$CM_RELEASE")" -o name); do
    echo "${pod#pod/} $(readyz_serial "$CM_NAMESPACE" "${pod#pod/}" 9081)"
  done | sort
}

# wire_serials DIR: "ip serial" for every service1 pod, from its handshake.
wire_serials() {
  local ip
  for ip in $(kubectl -n "$CM_NAMESPACE" get pods -l "$(s1_selector "$CM_RELEASE")" -o jsonpath='{.items[*].status.podIP}'); do
    echo "$ip $(wire_serial "$ip" "$CM_RELEASE-service1-grpc" "$1")"
  done | sort
}

# reconnections: "pod N" for every service2 pod: its connections to service1
# replicas so far (its log line "connected to service1 replica").
reconnections() {
  local pod
  for pod in $(kubectl -n "$CM_NAMESPACE" get pods -l "$(s2_selector "$CM_RELEASE")" -o name); do
    echo "${pod#pod/} $(kubectl -n "$CM_NAMESPACE" logs "$pod" | grep -c 'connected to service1 replica')"
  done | sort
}

# renew_both: the command under load. Renews both leaves, waits for the new
# revisions, then until every pod has loaded its new certificate (the kubelet
# updates Secret volumes on its next sync of the pod, within about a minute),
# then until every service2 pod has made new connections to service1 (made
# with the new certificates on both sides).
renew_both() {
  local dir=$1 name rev s1_new s2_new i start=$SECONDS pending before after
  for name in service1 service2; do
    rev=$(kubectl -n "$CM_NAMESPACE" get certificate "$CM_RELEASE-$name" -o jsonpath='{.status.revision}')
    renew_certificate "$CM_NAMESPACE" "$CM_RELEASE-$name" || return 1
    if ! kubectl -n "$CM_NAMESPACE" wait --for=jsonpath='{.status.revision}'=$((rev + 1)) \
      "certificate/$CM_RELEASE-$name" --timeout=120s >/dev/null ||
      ! kubectl -n "$CM_NAMESPACE" wait --for=condition=Ready "certificate/$CM_RELEASE-$name" --timeout=60s >/dev/null; then
      echo "Certificate $CM_RELEASE-$name: no Ready revision $((rev + 1)) within 120 s"
      kubectl -n "$CM_NAMESPACE" get certificate,certificaterequest
      return 1
    fi
    echo "Certificate $CM_RELEASE-$name: revision $rev -> $((rev + 1)) after $((SECONDS - start)) s"
  done
  s1_new=$(kubectl -n "$CM_NAMESPACE" get secret "$CM_RELEASE-service1-tls" -o jsonpath='{.data.tls\.crt}' | base64 -d | serial_of)
  s2_new=$(kubectl -n "$CM_NAMESPACE" get secret "$CM_RELEASE-service2-tls" -o jsonpath='{.data.tls\.crt}' | base64 -d | serial_of)
  echo "new serials: service1 $s1_new, service2 $s2_new"
  for ((i = 0; i < 120; i++)); do
    pending=$(pod_serials | grep -v -e " $s1_new\$" -e " $s2_new\$")
    [[ -z $pending ]] && break
    sleep 2
  done
  [[ -z $pending ]] || {
    echo "after $((SECONDS - start)) s still on the old certificate: $(tr '\n' ' ' <<<"$pending")"
    return 1
  }
  echo "every pod has loaded its new certificate $((SECONDS - start)) s after the renewal began"
  before=$(reconnections)
  for ((i = 0; i < 60; i++)); do
    after=$(reconnections)
    # Each service2 pod reconnected at least once to each of the 2 service1 replicas.
    if join <(echo "$before") <(echo "$after") | awk '$3 - $2 < 2 { bad = 1 } END { exit bad }'; then
      echo "service2 pods reconnected since (connections before and after): $(join <(echo "$before") <(echo "$after") | tr '\n' ' ')"
      return 0
    fi
    sleep 1
  done
  echo "service2 pods did not reconnect within 60 s: $(join <(echo "$before") <(echo "$after") | tr '\n' ' ')"
  return 1
}

# Renewal under load: both leaves renewed at once (as `cmctl renew` would)
# while load.sh calls say-hello two at a time; every pod loads its new
# certificate without a restart, service1 presents the new one in new
# handshakes, service2 reconnects with its new one, and no call fails.
check_cert_manager_renewal() {
  local dir=$CHECKS_TMP/cm-renew pods_before pods_after serials_before serials_after wire_before wire_after status=0
  # shellcheck disable=SC2034 # read by under_load
  local NAMESPACE=$CM_NAMESPACE RELEASE=$CM_RELEASE
  mkdir -p "$dir"
  secret_file "$CM_NAMESPACE" "$CM_RELEASE-service2-tls" ca.crt "$dir/ca.crt" &&
    secret_file "$CM_NAMESPACE" "$CM_RELEASE-service2-tls" tls.crt "$dir/s2.crt" &&
    secret_file "$CM_NAMESPACE" "$CM_RELEASE-service2-tls" tls.key "$dir/s2.key" || return 1
  pods_before=$(cm_pods)
  serials_before=$(pod_serials)
  wire_before=$(wire_serials "$dir")
  echo "before: loaded $(tr '\n' ' ' <<<"$serials_before")"
  echo "before: service1 presents $(tr '\n' ' ' <<<"$wire_before")"
  under_load "renewal of both leaves" renew_both "$dir" || status=1
  sed 's/^/  /' "$CHECKS_TMP/cmd.out"
  # The new client certificate for s_client: the old one is still valid,
  # but the new one is what service2 presents now.
  secret_file "$CM_NAMESPACE" "$CM_RELEASE-service2-tls" tls.crt "$dir/s2.crt" &&
    secret_file "$CM_NAMESPACE" "$CM_RELEASE-service2-tls" tls.key "$dir/s2.key" || return 1
  serials_after=$(pod_serials)
  wire_after=$(wire_serials "$dir")
  pods_after=$(cm_pods)
  echo "after: loaded $(tr '\n' ' ' <<<"$serials_after")"
  echo "after: service1 presents $(tr '\n' ' ' <<<"$wire_after")"
  # Every serial changed, and what service1 presents is what it loaded.
  join <(echo "$serials_before") <(echo "$serials_after") | awk '$2 == $3 || $3 == "" { bad = 1 } END { exit bad }' || {
    echo "a pod kept its serial"
    status=1
  }
  if [[ -z $wire_after ]] ||
    ! join <(echo "$wire_before") <(echo "$wire_after") | awk '$2 == $3 || $3 == "" { bad = 1 } END { exit bad }'; then
    echo "a service1 pod still presents its old certificate"
    status=1
  fi
  [[ $(awk '{print $2}' <<<"$wire_after" | sort -u) == "$(sed -n 1p <<<"$serials_after" | awk '{print $2}')" ]] || {
    echo "service1 presents another certificate than it loaded"
    status=1
  }
  if [[ $pods_before == "$pods_after" ]]; then
    echo "no pod restarted or replaced (pod=restarts): $(tr '\n' ' ' <<<"$pods_after")"
  else
    echo "pods changed: before $(tr '\n' ' ' <<<"$pods_before"), after $(tr '\n' ' ' <<<"$pods_after")"
    status=1
  fi
  return $status
}

# tls.spiffeOnly: a certificate from the same CA Issuer with the DNS SAN
# "service2" but another SPIFFE ID is accepted by service1 before (the
# negative control: that name is what spiffeOnly stops trusting) and
# refused after; service2 is still accepted, by its SPIFFE ID.
check_cert_manager_spiffe_only() {
  local dir=$CHECKS_TMP/cm-spiffe ip name=$CM_RELEASE-service1-grpc before after mine allowed key old_pods status=0
  local intruder=spiffe://cluster.local/ns/$CM_NAMESPACE/sa/intruder
  mkdir -p "$dir"
  kubectl apply -f - >/dev/null <<YAML || return 1
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: intruder, namespace: $CM_NAMESPACE}
spec:
  secretName: intruder-tls
  commonName: service2
  dnsNames: [service2]
  uris: ["$intruder"]
  usages: [client auth, digital signature]
  privateKey: {algorithm: ECDSA, size: 256, rotationPolicy: Always}
  issuerRef: {name: $CM_RELEASE-ca, kind: Issuer, group: cert-manager.io}
YAML
  kubectl -n "$CM_NAMESPACE" wait --for=condition=Ready certificate/intruder --timeout=60s >/dev/null || return 1
  echo "intruder leaf: $(cm_describe "$CM_NAMESPACE" intruder-tls)"
  for key in tls.crt tls.key ca.crt; do
    secret_file "$CM_NAMESPACE" intruder-tls "$key" "$dir/intruder-$key" || return 1
  done
  ip=$(kubectl -n "$CM_NAMESPACE" get pods -l "$(s1_selector "$CM_RELEASE")" -o jsonpath='{.items[0].status.podIP}')
  before=$(grpc_status "$ip" "$name" "$dir/intruder-tls.crt" "$dir/intruder-tls.key" "$dir/intruder-ca.crt")
  echo "spiffeOnly=false: the intruder's Health/Check to service1 ($ip): grpc-status ${before:-none} (0: accepted by its DNS SAN service2)"
  [[ $before == 0 ]] || status=1
  old_pods=$(kubectl -n "$CM_NAMESPACE" get pods -l "app.kubernetes.io/instance=$CM_RELEASE" -o name)
  helm_install "$CM_RELEASE" "$CM_NAMESPACE" --reuse-values --set tls.spiffeOnly=true >/dev/null || return 1
  # --wait returns once the new pods are Ready; the old ones, still
  # draining, would answer with the old allow-list.
  # shellcheck disable=SC2086 # one argument per pod
  kubectl -n "$CM_NAMESPACE" wait --for=delete $old_pods --timeout=120s >/dev/null 2>&1 || return 1
  allowed=$(kubectl -n "$CM_NAMESPACE" get configmap "$CM_RELEASE-service1-config" -o jsonpath='{.data.TLS_ALLOWED_CLIENTS}')
  echo "spiffeOnly=true: service1's TLS_ALLOWED_CLIENTS=$allowed"
  [[ $allowed == "spiffe://cluster.local/ns/$CM_NAMESPACE/sa/$CM_RELEASE-service2" ]] || status=1
  cm_say_hello "$CM_NAMESPACE" "$CM_RELEASE" || status=1
  for key in tls.crt tls.key; do secret_file "$CM_NAMESPACE" "$CM_RELEASE-service2-tls" "$key" "$dir/s2-$key" || return 1; done
  ip=$(kubectl -n "$CM_NAMESPACE" get pods -l "$(s1_selector "$CM_RELEASE")" -o jsonpath='{.items[0].status.podIP}')
  mine=$(grpc_status "$ip" "$name" "$dir/s2-tls.crt" "$dir/s2-tls.key" "$dir/intruder-ca.crt")
  after=$(grpc_status "$ip" "$name" "$dir/intruder-tls.crt" "$dir/intruder-tls.key" "$dir/intruder-ca.crt" none)
  echo "spiffeOnly=true: Health/Check to service1 ($ip) with service2's certificate: grpc-status ${mine:-none}; with the intruder's: ${after:-none} (refused: 7, PermissionDenied, or the handshake refused, curl-exit-35/56)"
  [[ $mine == 0 && $after =~ ^(7|curl-exit-35|curl-exit-56)$ ]] || status=1
  kubectl -n "$CM_NAMESPACE" delete certificate intruder >/dev/null 2>&1
  return $status
}

cert_manager_stop() {
  helm uninstall "$CM_RELEASE" --namespace "$CM_NAMESPACE" --wait >/dev/null 2>&1
  kubectl delete namespace "$CM_NAMESPACE" --timeout=120s >/dev/null 2>&1
  return 0
}

# --- ingress ---------------------------------------------------------------------------
# Traefik as a host process in node 1's namespace (an add-on of cluster.sh,
# like cert-manager), as the user system:traefik with the rights upstream's
# chart gives its kubernetesIngress and kubernetesGateway providers. It
# serves HTTP on the node's address, as an edge proxy in front of the
# cluster would, and sends each call to a pod's address from the
# EndpointSlices, as upstream does by default. The IngressClass and
# GatewayClass named traefik are the ones upstream's chart makes.
TRAEFIK_PORT=8000 # entry point "web"; a Gateway listener must use this port
TRAEFIK_PING_PORT=8082
INGRESS_NAMESPACE=grpc-services-ingress
INGRESS_RELEASE=ing
INGRESS_HOST=say-hello.ingress.test
GATEWAY_HOST=say-hello.gateway.test

traefik_manifest() {
  cat <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:traefik"}
rules:
  - {apiGroups: [""], resources: [nodes, services, configmaps, secrets, namespaces], verbs: [get, list, watch]}
  - {apiGroups: [""], resources: [pods], verbs: [get]}
  - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
  - {apiGroups: [extensions, networking.k8s.io], resources: [ingressclasses, ingresses], verbs: [get, list, watch]}
  - {apiGroups: [extensions, networking.k8s.io], resources: [ingresses/status], verbs: [update]}
  - apiGroups: [gateway.networking.k8s.io]
    resources: [backendtlspolicies, gatewayclasses, gateways, grpcroutes, httproutes, referencegrants, tcproutes, tlsroutes]
    verbs: [get, list, watch]
  - apiGroups: [gateway.networking.k8s.io]
    resources: [backendtlspolicies/status, gatewayclasses/status, gateways/status, grpcroutes/status, httproutes/status,
      tcproutes/status, tlsroutes/status]
    verbs: [update]
YAML
  user_binding "system:traefik" "system:traefik" "system:traefik"
  cat <<'YAML'
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: traefik}
spec: {controllerName: traefik.io/gateway-controller}
YAML
}

traefik_start() {
  local i out crds cluster_sh=$ADDONS_DIR/../cluster.sh log=$STATE/logs/traefik.log
  # Server-side: the HTTPRoute CRD (430 kB) does not fit client-side
  # apply's last-applied annotation (256 kB).
  kubectl apply --server-side -f "$ADDONS_BIN_GATEWAY_API_CRDS" >/dev/null || return 1
  crds=$(kubectl get crd -o name | grep '\.gateway\.networking\.k8s\.io$')
  # shellcheck disable=SC2086 # one argument per CRD
  kubectl wait --for=condition=Established --timeout=60s $crds >/dev/null || return 1
  "$cluster_sh" client traefik system:traefik || return 1
  traefik_manifest | kubectl apply -f - >/dev/null || return 1
  # One controller only: a kept cluster may have one. KUBECONFIG is how
  # Traefik's Kubernetes providers take a kubeconfig (its own flags take
  # only an endpoint and a token).
  if ! kill -0 "$(cat "$STATE/pids/traefik" 2>/dev/null)" 2>/dev/null; then
    "$cluster_sh" add-on traefik env KUBECONFIG="$STATE/traefik.kubeconfig" "$ADDONS_BIN_TRAEFIK/traefik" \
      --global.checkNewVersion=false --global.sendAnonymousUsage=false --log.level=INFO --log.noColor=true \
      --entryPoints.web.address="$ADDONS_NODE_IP:$TRAEFIK_PORT" \
      --entryPoints.traefik.address="$ADDONS_NODE_IP:$TRAEFIK_PING_PORT" --ping=true \
      --providers.kubernetesIngress=true --providers.kubernetesIngress.ingressEndpoint.ip="$ADDONS_NODE_IP" \
      --providers.kubernetesGateway=true --providers.kubernetesGateway.statusAddress.ip="$ADDONS_NODE_IP" ||
      return 1
  fi
  for ((i = 0; i < 120; i++)); do
    # shellcheck disable=SC2016 # expanded by the inner bash
    out=$(node_sh -c 'curl -s --max-time 2 "$1"' _ "http://$ADDONS_NODE_IP:$TRAEFIK_PING_PORT/ping")
    [[ $out == OK ]] && break
    kill -0 "$(cat "$STATE/pids/traefik")" 2>/dev/null || break
    sleep 0.5
  done
  [[ $out == OK ]] || {
    echo "Traefik does not answer /ping (log: $log)"
    tail -5 "$log"
    return 1
  }
  # Traefik's Gateway provider accepts the GatewayClass of its controller
  # name once it runs.
  kubectl wait --for=condition=Accepted --timeout=60s gatewayclass/traefik >/dev/null || {
    echo "GatewayClass traefik not Accepted: $(kubectl get gatewayclass traefik -o jsonpath='{.status.conditions}')"
    tail -5 "$log"
    return 1
  }
  echo "CRDs: $(wc -w <<<"$crds") of gateway.networking.k8s.io, bundle $(kubectl get crd httproutes.gateway.networking.k8s.io \
    -o jsonpath='{.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version} channel {.metadata.annotations.gateway\.networking\.k8s\.io/channel}')"
  echo "Traefik $("$ADDONS_BIN_TRAEFIK/traefik" version | awk '/^Version:/ {print $2}') on $ADDONS_NODE_IP:$TRAEFIK_PORT: /ping OK, GatewayClass traefik Accepted"
}

# ingress_calls HOST NAME: through Traefik with the Host header HOST: waits
# until the route answers (load.sh reachable: Traefik programs a route a
# moment after it sees the object), then 20 say-hello calls, each of which
# must answer 200 "Hello, NAME!" and echo its X-Request-ID.
ingress_calls() {
  local host=$1 url out
  url="http://$ADDONS_NODE_IP:$TRAEFIK_PORT/api/v1/say-hello?name=$2"
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(node_sh -c 'LOAD_HOST=$1 "$2" reachable "$3"' _ "$host" "$CHECKS_DIR/load.sh" "$url") || {
    echo "Host $host through Traefik: $out"
    return 1
  }
  echo "Host $host through Traefik: $out"
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(node_sh -c 'LOAD_HOST=$1 "$2" echoes "$3" "$4" 20 "$5"' _ "$host" "$CHECKS_DIR/load.sh" "$url" \
    "$2-$RANDOM" "\"Hello, ${2^^}!\"")
  echo "20 say-hello calls with X-Request-ID through Traefik, Host $host: $out"
  [[ $out == "sent 20 failed 0 echoed "* ]]
}

# no_route HOST: Traefik answers a say-hello for HOST with 404 (no router
# matches), the negative control for the route the check just removed.
# Traefik drops a router a moment after its object is gone (its providers
# throttle their updates), so this waits for the 404, at most 30 s.
no_route() {
  local out
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(node_sh -c 'LOAD_HOST=$1 "$2" reachable "$3" 404' _ "$1" "$CHECKS_DIR/load.sh" \
    "http://$ADDONS_NODE_IP:$TRAEFIK_PORT/api/v1/say-hello?name=none")
  local status=$?
  echo "Host $1 through Traefik: $out (404 wanted: no route)"
  return $status
}

# service2.ingress with className traefik: Traefik takes the Ingress up
# (its address in the Ingress's status), and say-hello answers through it.
check_ingress() {
  local ingress=$INGRESS_RELEASE-service2
  no_route "$INGRESS_HOST" || return 1
  helm_install "$INGRESS_RELEASE" "$INGRESS_NAMESPACE" --set service1.replicas=2,service2.replicas=1 \
    --set service2.ingress.enabled=true,service2.ingress.className=traefik \
    --set "service2.ingress.hosts[0]=$INGRESS_HOST" >/dev/null || return 1
  kubectl -n "$INGRESS_NAMESPACE" wait --for=jsonpath='{.status.loadBalancer.ingress[0].ip}'="$ADDONS_NODE_IP" \
    "ingress/$ingress" --timeout=60s >/dev/null || {
    echo "Traefik did not take up Ingress $ingress within 60 s (log: $STATE/logs/traefik.log)"
    tail -5 "$STATE/logs/traefik.log"
    return 1
  }
  echo "Ingress $ingress: $(kubectl -n "$INGRESS_NAMESPACE" get ingress "$ingress" \
    -o jsonpath='class {.spec.ingressClassName}, host {.spec.rules[0].host}, path {.spec.rules[0].http.paths[0].path} ({.spec.rules[0].http.paths[0].pathType}), address {.status.loadBalancer.ingress[0].ip} (written by Traefik)')"
  ingress_calls "$INGRESS_HOST" ingress
}

# service2.httpRoute with service2.ingress off, attached to a Gateway of
# GatewayClass traefik: the Gateway is Programmed, the route Accepted, and
# say-hello answers through it; the Ingress's host no longer does.
check_httproute() {
  local route=$INGRESS_RELEASE-service2 status=0
  # check_ingress's namespace, or a new one when this check runs alone.
  kubectl get namespace "$INGRESS_NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$INGRESS_NAMESPACE" >/dev/null || return 1
  kubectl apply -f - >/dev/null <<YAML || return 1
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: traefik, namespace: $INGRESS_NAMESPACE}
spec:
  gatewayClassName: traefik
  listeners:
    - {name: web, protocol: HTTP, port: $TRAEFIK_PORT}
YAML
  kubectl -n "$INGRESS_NAMESPACE" wait --for=condition=Programmed gateway/traefik --timeout=60s >/dev/null || {
    echo "Gateway traefik not Programmed: $(kubectl -n "$INGRESS_NAMESPACE" get gateway traefik -o jsonpath='{.status.conditions}')"
    return 1
  }
  echo "Gateway traefik: Programmed, address $(kubectl -n "$INGRESS_NAMESPACE" get gateway traefik -o jsonpath='{.status.addresses[0].value}')"
  # The values of check_ingress's release, with the Ingress off.
  helm_install "$INGRESS_RELEASE" "$INGRESS_NAMESPACE" --set service1.replicas=2,service2.replicas=1 \
    --set service2.ingress.enabled=false --set service2.httpRoute.enabled=true --set-json 'service2.httpRoute.parentRefs=[{"name":"traefik","sectionName":"web"}]' \
    --set "service2.httpRoute.hostnames[0]=$GATEWAY_HOST" >/dev/null || return 1
  kubectl -n "$INGRESS_NAMESPACE" wait --timeout=60s "httproute/$route" \
    --for=jsonpath='{.status.parents[0].conditions[?(@.type=="Accepted")].status}'=True >/dev/null || {
    echo "HTTPRoute $route not Accepted: $(kubectl -n "$INGRESS_NAMESPACE" get httproute "$route" -o jsonpath='{.status}')"
    return 1
  }
  echo "HTTPRoute $route: $(kubectl -n "$INGRESS_NAMESPACE" get httproute "$route" \
    -o jsonpath='parent {.spec.parentRefs[0].name}/{.spec.parentRefs[0].sectionName}, hostname {.spec.hostnames[0]}, Accepted by {.status.parents[0].controllerName}'); Ingress: $(kubectl -n "$INGRESS_NAMESPACE" get ingress -o name | wc -l) left"
  ingress_calls "$GATEWAY_HOST" gateway || status=1
  no_route "$INGRESS_HOST" || status=1
  return $status
}

ingress_stop() {
  helm uninstall "$INGRESS_RELEASE" --namespace "$INGRESS_NAMESPACE" --wait >/dev/null 2>&1
  kubectl delete namespace "$INGRESS_NAMESPACE" --timeout=120s >/dev/null 2>&1
  return 0
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
  if addon_wanted cert_manager; then
    local failed_before=$checks_failed
    run_check "A4. cert-manager's controller ($(basename "$ADDONS_BIN_CERT_MANAGER"), our wiring, no webhook) runs with its CRDs" cert_manager_start
    if ((checks_failed == failed_before)); then
      run_check "A4. tls.mode=certManager (self-signed root -> CA Issuer): leaves issued, pods Ready, say-hello over them" check_cert_manager_install
      if ((checks_failed == failed_before)); then
        run_check "A4. renewal of both leaves under load: new serials loaded and presented without a restart, no failed request" \
          check_cert_manager_renewal
        run_check "A4. tls.spiffeOnly: service2 accepted by its SPIFFE ID; a certificate from the same issuer with another identity refused" \
          check_cert_manager_spiffe_only
      fi
      run_check "A4. tls.certManager.caSecretName: leaves from our own root CA in a Secret, say-hello over them" check_cert_manager_ca_secret
    fi
    cert_manager_stop
  fi
  if addon_wanted ingress; then
    local failed_before=$checks_failed
    run_check "A5. Traefik ($(basename "$ADDONS_BIN_TRAEFIK")) with its Ingress and Gateway API providers, and the Gateway API CRDs ($(basename "$ADDONS_BIN_GATEWAY_API_CRDS" | sed 's/.*-v/v/'))" traefik_start
    if ((checks_failed == failed_before)); then
      run_check "A5. service2.ingress (class traefik): 20 say-hello calls through Traefik, each 200 with its X-Request-ID echoed" check_ingress
      run_check "A5. service2.httpRoute on a Gateway of class traefik, ingress off: the same through the Gateway, the Ingress's host gone" check_httproute
    fi
    ingress_stop
  fi
}
