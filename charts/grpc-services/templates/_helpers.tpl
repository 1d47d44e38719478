{{/*
Chart name, for the app.kubernetes.io/name label.
*/}}
{{- define "grpc-services.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: the release name unless fullnameOverride is set.
Cut to 40 characters so the longest name, <fullname>-service1-grpc, stays a
valid 63-character DNS label.
*/}}
{{- define "grpc-services.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "grpc-services.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of one object, as YAML: the chart's own labels (with
app.kubernetes.io/component when "component" is given), then `extra` and
commonLabels. Merged as maps, and the chart's labels win: a key in
commonLabels or podLabels can never change a selector label or write a key
twice. Takes (dict "root" $ "component" "service1" "extra" (dict ...));
component and extra are optional.
*/}}
{{- define "grpc-services.objectLabels" -}}
{{- $root := .root }}
{{- $labels := dict
  "helm.sh/chart" (include "grpc-services.chart" $root)
  "app.kubernetes.io/name" (include "grpc-services.name" $root)
  "app.kubernetes.io/instance" $root.Release.Name
  "app.kubernetes.io/version" (toString $root.Chart.AppVersion)
  "app.kubernetes.io/managed-by" $root.Release.Service
  "app.kubernetes.io/part-of" (include "grpc-services.name" $root) }}
{{- with .component }}
{{- $_ := set $labels "app.kubernetes.io/component" . }}
{{- end }}
{{- $labels = merge $labels (deepCopy (.extra | default dict)) (deepCopy ($root.Values.commonLabels | default dict)) }}
{{- toYaml $labels }}
{{- end }}

{{/*
Labels on every object. Takes the root context.
*/}}
{{- define "grpc-services.labels" -}}
{{- include "grpc-services.objectLabels" (dict "root" .) }}
{{- end }}

{{/*
An `annotations:` block for an object's metadata: commonAnnotations, then
`extra` (which wins over them), or nothing when both are empty. Takes
(dict "root" $ "extra" (dict ...)).
*/}}
{{- define "grpc-services.annotations" -}}
{{- $all := merge (deepCopy (.extra | default dict)) (.root.Values.commonAnnotations | default dict) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Selector labels of one component. Takes (dict "root" $ "component" "service1").
*/}}
{{- define "grpc-services.selectorLabels" -}}
{{- toYaml (dict "app.kubernetes.io/name" (include "grpc-services.name" .root) "app.kubernetes.io/instance" .root.Release.Name "app.kubernetes.io/component" .component) }}
{{- end }}

{{/*
All labels of one component. Takes (dict "root" $ "component" "service1"),
and optionally "extra" (the pod template's podLabels).
*/}}
{{- define "grpc-services.componentLabels" -}}
{{- include "grpc-services.objectLabels" . }}
{{- end }}

{{/*
The image reference. image.tag may be a number (`--set image.tag=1234567`
parses as one, and a values file's number reaches the template as a float):
a whole number is written without a decimal point or exponent.
global.imageRegistry, else image.registry, replaces the registry part of
image.repository (its first component when that has a dot or a colon or is
localhost, as container runtimes read it), or is put in front of it.
*/}}
{{- define "grpc-services.image" -}}
{{- $tag := .Values.image.tag }}
{{- if or (kindIs "float64" $tag) (kindIs "int64" $tag) (kindIs "int" $tag) }}
{{- $tag = int64 $tag | toString }}
{{- end }}
{{- $repository := .Values.image.repository }}
{{- $registry := default .Values.image.registry (dig "imageRegistry" "" (.Values.global | default dict)) }}
{{- if $registry }}
{{- $parts := splitList "/" $repository }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repository = rest $parts | join "/" }}
{{- end }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion $tag) }}
{{- end }}
{{- end }}

{{/*
imagePullSecrets of every pod: global.imagePullSecrets, then
imagePullSecrets, each a name or {name: ...}, without repeats. An
`imagePullSecrets:` block, or nothing.
*/}}
{{- define "grpc-services.imagePullSecrets" -}}
{{- $names := list }}
{{- range concat (dig "imagePullSecrets" list (.Values.global | default dict)) .Values.imagePullSecrets }}
{{- if kindIs "string" . }}
{{- $names = append $names . }}
{{- else }}
{{- $names = append $names .name }}
{{- end }}
{{- end }}
{{- with $names | uniq | compact }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Whether security contexts are adapted to OpenShift
(global.compatibility.openshift.adaptSecurityContext): "true" or "".
auto: when the API server serves security.openshift.io/v1 (offline, where
.Capabilities knows no such API, .Values.testApiVersions stands in).
*/}}
{{- define "grpc-services.openshiftAdapt" -}}
{{- $mode := dig "compatibility" "openshift" "adaptSecurityContext" "auto" (.Values.global | default dict) }}
{{- $openshift := or (.Capabilities.APIVersions.Has "security.openshift.io/v1") (has "security.openshift.io/v1" .Values.testApiVersions) }}
{{- if or (eq $mode "force") (and (eq $mode "auto") $openshift) }}true{{ end }}
{{- end }}

{{/*
A security context (podSecurityContext or containerSecurityContext) as YAML.
On OpenShift (see grpc-services.openshiftAdapt) the fixed runAsUser,
runAsGroup and fsGroup are left out: the restricted SCC assigns each
namespace its own range and refuses others. Takes (dict "root" $ "context" ...).
*/}}
{{- define "grpc-services.securityContext" -}}
{{- $sc := deepCopy (.context | default dict) }}
{{- if include "grpc-services.openshiftAdapt" .root }}
{{- $sc = omit $sc "runAsUser" "runAsGroup" "fsGroup" }}
{{- end }}
{{- toYaml $sc }}
{{- end }}

{{/*
A value that may hold template text (a list or map from values), rendered
with tpl, as YAML. Takes (dict "root" $ "value" ...).
*/}}
{{- define "grpc-services.tplValue" -}}
{{- if kindIs "string" .value }}
{{- tpl .value .root }}
{{- else }}
{{- tpl (toYaml .value) .root }}
{{- end }}
{{- end }}

{{/* Names shared by several templates. */}}
{{- define "grpc-services.service1GrpcName" -}}
{{- printf "%s-service1-grpc" (include "grpc-services.fullname" .) }}
{{- end }}

{{/*
The ServiceAccount a component runs as (and names in its SPIFFE ID):
serviceAccount.name, else <fullname>-<component> when the chart creates it,
else "default".
*/}}
{{- define "grpc-services.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if $sa.name }}
{{- $sa.name }}
{{- else if $sa.create }}
{{- printf "%s-%s" (include "grpc-services.fullname" .root) .component }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/*
The name service1's certificate must carry and service2 checks
(TLS_SERVER_NAME on both: service1 refuses a certificate without it): the
headless Service's short name.
*/}}
{{- define "grpc-services.tlsServerName" -}}
{{- include "grpc-services.service1GrpcName" . }}
{{- end }}

{{/*
service2's SPIFFE identity, carried as a URI SAN by cert-manager certificates.
*/}}
{{- define "grpc-services.service2SpiffeId" -}}
{{- include "grpc-services.spiffeId" (dict "root" . "component" "service2") }}
{{- end }}

{{/*
A component's SPIFFE ID: spiffe://<clusterDomain>/ns/<namespace>/sa/<its
ServiceAccount>. Takes (dict "root" $ "component" "service1").
*/}}
{{- define "grpc-services.spiffeId" -}}
{{- printf "spiffe://%s/ns/%s/sa/%s" .root.Values.clusterDomain .root.Release.Namespace (include "grpc-services.serviceAccountName" .) }}
{{- end }}

{{/*
DNS names on service1's certificate, one per line: both its Services in
every form a client may dial, plus "service1".
*/}}
{{- define "grpc-services.service1DnsNames" -}}
{{- $ns := .Release.Namespace }}
{{- range $svc := list (include "grpc-services.service1GrpcName" .) (printf "%s-service1" (include "grpc-services.fullname" .)) }}
{{ $svc }}
{{ $svc }}.{{ $ns }}
{{ $svc }}.{{ $ns }}.svc
{{ $svc }}.{{ $ns }}.svc.{{ $.Values.clusterDomain }}
{{- end }}
service1
{{- end }}

{{/*
Secret holding a component's tls.crt, tls.key and ca.crt.
Takes (dict "root" $ "component" "service1").
*/}}
{{- define "grpc-services.tlsSecretName" -}}
{{- if eq .root.Values.tls.mode "existingSecret" }}
{{- $name := index .root.Values.tls.existingSecret .component }}
{{- required (printf "tls.existingSecret.%s is required when tls.mode is existingSecret" .component) $name }}
{{- else }}
{{- printf "%s-%s-tls" (include "grpc-services.fullname" .root) .component }}
{{- end }}
{{- end }}

{{/*
The `data` of a Secret from an earlier release, as YAML ({} if none).
Takes (list $ "secret-name"). `lookup` asks the cluster; it returns nothing
offline (helm template, --dry-run, the chart tests), and only then is
.Values.tls.testExistingSecrets consulted, which the tests use to stand in
for the cluster.
*/}}
{{- define "grpc-services.existingSecretData" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $found := lookup "v1" "Secret" $root.Release.Namespace $name }}
{{- if and $found $found.data }}
{{- toYaml $found.data }}
{{- else }}
{{- toYaml (index $root.Values.tls.testExistingSecrets $name | default dict) }}
{{- end }}
{{- end }}

{{/*
Seconds as a duration the services parse ("5s").
*/}}
{{- define "grpc-services.seconds" -}}
{{- printf "%ds" (int .) }}
{{- end }}

{{/*
Every second of shutdown, plus a margin: DRAIN_DELAY, then SHUTDOWN_GRACE.
*/}}
{{- define "grpc-services.terminationGracePeriodSeconds" -}}
{{- add .Values.drainDelaySeconds .Values.shutdownGraceSeconds .Values.terminationGraceMarginSeconds }}
{{- end }}

{{/*
The non-secret configuration of one component, as ConfigMap data. Pod
templates carry its checksum, so changing any of it rolls the pods. TLS
material is deliberately left out: certificates are re-read from the mounted
Secret every TLS_RELOAD_INTERVAL, and a rotation must not restart pods.
Takes (dict "root" $ "component" "service1").
*/}}
{{- define "grpc-services.configData" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $c := index $v .component -}}
BIND_ADDR: {{ $v.bindAddr | quote }}
PORT: {{ int $c.ports.http | quote }}
ADMIN_PORT: {{ int $c.ports.admin | quote }}
LOG_FORMAT: {{ $v.logFormat | quote }}
RUST_LOG: {{ $v.rustLog | quote }}
DRAIN_DELAY: {{ include "grpc-services.seconds" $v.drainDelaySeconds | quote }}
SHUTDOWN_GRACE: {{ include "grpc-services.seconds" $v.shutdownGraceSeconds | quote }}
MAX_CONNECTIONS: {{ int $v.connections.max | quote }}
ADMIN_MAX_CONNECTIONS: {{ int $v.connections.adminMax | quote }}
HTTP2_MAX_CONCURRENT_STREAMS: {{ int $v.connections.http2MaxConcurrentStreams | quote }}
ADMIN_MAX_CONCURRENT_STREAMS: {{ int $v.connections.adminMaxConcurrentStreams | quote }}
ADMIN_MAX_METRICS_RESPONSES: {{ int $v.connections.adminMaxMetricsResponses | quote }}
HTTP_WRITE_TIMEOUT: {{ include "grpc-services.seconds" $v.connections.writeTimeoutSeconds | quote }}
TLS_MODE: "mtls"
TLS_CERT: "/etc/tls/tls.crt"
TLS_KEY: "/etc/tls/tls.key"
TLS_CA: "/etc/tls/ca.crt"
TLS_RELOAD_INTERVAL: {{ include "grpc-services.seconds" $v.tls.reloadIntervalSeconds | quote }}
OTEL_SERVICE_NAME: {{ .component | quote }}
{{- with $v.otel }}
{{- if .endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .endpoint | quote }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ .protocol | quote }}
OTEL_EXPORTER_OTLP_COMPRESSION: {{ .compression | quote }}
{{- if .headers }}
OTEL_EXPORTER_OTLP_HEADERS: {{ include "grpc-services.otelHeaders" .headers | quote }}
{{- end }}
{{- if and .tls.secretName .tls.caKey }}
OTEL_EXPORTER_OTLP_CERTIFICATE: {{ printf "/etc/otel-tls/%s" .tls.caKey | quote }}
{{- end }}
{{- if and .tls.secretName .tls.clientCertificate }}
OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: "/etc/otel-tls/tls.crt"
OTEL_EXPORTER_OTLP_CLIENT_KEY: "/etc/otel-tls/tls.key"
{{- end }}
{{- end }}
{{- end }}
{{- if eq .component "service1" }}
GRPC_PORT: {{ int $c.ports.grpc | quote }}
REST_ENABLED: {{ $c.http.enabled | quote }}
TLS_SERVER_NAME: {{ include "grpc-services.tlsServerName" $root | quote }}
{{- $service2Ids := list "service2" (include "grpc-services.service2SpiffeId" $root) }}
{{- if $v.tls.spiffeOnly }}
{{- $service2Ids = list (include "grpc-services.service2SpiffeId" $root) }}
{{- end }}
TLS_ALLOWED_CLIENTS: {{ concat $service2Ids $c.extraAllowedClients | uniq | join "," | quote }}
MAX_CONNECTION_AGE: {{ include "grpc-services.seconds" $c.maxConnectionAgeSeconds | quote }}
MAX_CONNECTION_AGE_GRACE: {{ include "grpc-services.seconds" $c.maxConnectionAgeGraceSeconds | quote }}
GRPC_REFLECTION: {{ $c.grpcReflection | quote }}
TLS_MAX_CLIENT_CHAIN: {{ int $c.maxClientChain | quote }}
GRPC_MAX_CONNECTIONS: {{ int $c.grpcMaxConnections | quote }}
MAX_TLS_HANDSHAKES: {{ int $c.maxTlsHandshakes | quote }}
{{- else }}
SERVICE1_CHANNEL: {{ printf "dns:///%s.%s.svc.%s:%d" (include "grpc-services.service1GrpcName" $root) $root.Release.Namespace $v.clusterDomain (int $v.service1.ports.grpc) | quote }}
TLS_SERVER_NAME: {{ include "grpc-services.tlsServerName" $root | quote }}
SERVICE1_TIMEOUT: {{ include "grpc-services.seconds" $c.service1TimeoutSeconds | quote }}
{{- with $c.upstream }}
{{- if gt (int .ejection.baseSeconds) (int .ejection.maxSeconds) }}
{{- fail "service2.upstream.ejection.baseSeconds must not exceed service2.upstream.ejection.maxSeconds" }}
{{- end }}
SERVICE1_ATTEMPT_TIMEOUT: {{ printf "%dms" (int .attemptTimeoutMilliseconds) | quote }}
SERVICE1_KEEPALIVE_INTERVAL: {{ printf "%dms" (int .keepaliveIntervalMilliseconds) | quote }}
SERVICE1_KEEPALIVE_TIMEOUT: {{ printf "%dms" (int .keepaliveTimeoutMilliseconds) | quote }}
SERVICE1_EJECT_AFTER_FAILURES: {{ int .ejection.consecutiveFailures | quote }}
SERVICE1_EJECT_TIME: {{ include "grpc-services.seconds" .ejection.baseSeconds | quote }}
SERVICE1_EJECT_TIME_MAX: {{ include "grpc-services.seconds" .ejection.maxSeconds | quote }}
SERVICE1_EJECT_MAX_PERCENT: {{ int .ejection.maxPercent | quote }}
{{- end }}
{{- if $v.tls.spiffeOnly }}
TLS_SERVER_IDENTITY: {{ include "grpc-services.spiffeId" (dict "root" $root "component" "service1") | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
otel.headers as OTEL_EXPORTER_OTLP_HEADERS: name=value pairs, comma-separated,
values percent-encoded where the format needs it (%, comma, space).
*/}}
{{- define "grpc-services.otelHeaders" -}}
{{- $pairs := list }}
{{- range $name, $value := . }}
{{- $pairs = append $pairs (printf "%s=%s" $name ($value | replace "%" "%25" | replace "," "%2C" | replace " " "%20")) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
Whether the pods mount otel.tls.secretName: only when spans are exported.
*/}}
{{- define "grpc-services.otelTlsMounted" -}}
{{- if and .Values.otel.endpoint .Values.otel.tls.secretName }}true{{ end }}
{{- end }}

{{/*
One native gRPC probe on the admin port. Takes (dict "port" 9080 "probe" {...}).
*/}}
{{- define "grpc-services.grpcProbe" -}}
grpc:
  port: {{ .port }}
{{ toYaml .probe }}
{{- end }}

{{/*
The port of otel.endpoint: the one written, else the scheme's (443, 80), as
the exporter would dial it.
*/}}
{{- define "grpc-services.otelPort" -}}
{{- $endpoint := .Values.otel.endpoint }}
{{- $hostPort := regexReplaceAll "[/?].*$" (regexReplaceAll "^https?://" $endpoint "") "" }}
{{- $port := regexFind ":[0-9]+$" $hostPort | trimPrefix ":" }}
{{- if $port }}{{ $port }}{{ else if hasPrefix "https://" $endpoint }}443{{ else }}80{{ end }}
{{- end }}

{{/*
Egress rules both services share (networkPolicy.egress): DNS, the OTLP
collector when spans are exported, and extraRules. A list of
NetworkPolicyEgressRules, as YAML.
*/}}
{{- define "grpc-services.egressRules" -}}
{{- $e := .Values.networkPolicy.egress }}
# DNS: service2 resolves service1's headless name, both the collector's.
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with $e.dnsTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if .Values.otel.endpoint }}
# OTLP export to otel.endpoint.
- ports:
    - port: {{ include "grpc-services.otelPort" . }}
      protocol: TCP
  {{- with $e.otelTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- with $e.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
PromQL label matchers for this release's series, for alerts and dashboards:
monitoring.prometheusRule.selector, else the release namespace and the pod
names of both Deployments (<fullname>-service1-<hash>-<id>), which any
Kubernetes service discovery labels.
*/}}
{{- define "grpc-services.seriesSelector" -}}
{{- $default := printf "namespace=\"%s\",pod=~\"%s-service[12]-[a-z0-9]+-[a-z0-9]+\"" .Release.Namespace (include "grpc-services.fullname" .) }}
{{- default $default .Values.monitoring.prometheusRule.selector }}
{{- end }}

{{/*
A Go duration ("2160h", "1h30m", "90s") in seconds, as a float written out.
*/}}
{{- define "grpc-services.durationSeconds" -}}
{{- $unit := dict "ns" 0.000000001 "us" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 }}
{{- $total = addf $total (mulf $n (index $unit (regexFind "(ns|us|ms|s|m|h)$" .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
Checks that compare two values, which values.schema.json cannot express.
Each fails the render with the key to change, before the API server or
cert-manager would refuse the object. Included once, from deployment.yaml.
*/}}
{{- define "grpc-services.validate" -}}
{{- range $component := list "service1" "service2" }}
{{- $a := (index $.Values $component).autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) is above maxReplicas (%d): the API server refuses such an HPA" $component (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- $c := index $.Values $component }}
{{- $derived := include "grpc-services.terminationGracePeriodSeconds" $ | int }}
{{- if and $c.terminationGracePeriodSeconds (lt (int $c.terminationGracePeriodSeconds) $derived) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) is shorter than drainDelaySeconds + shutdownGraceSeconds + terminationGraceMarginSeconds (%d): the kubelet would kill a draining pod" $component (int $c.terminationGracePeriodSeconds) $derived) }}
{{- end }}
{{- $vpa := $c.verticalPodAutoscaler }}
{{- if and $vpa.enabled (ne $vpa.updateMode "Off") $a.enabled (or $a.targetCPUUtilizationPercentage $a.targetMemoryUtilizationPercentage) }}
{{- fail (printf "%s.verticalPodAutoscaler.updateMode %s with an HPA on CPU or memory: the two would fight over the same pods. Use updateMode Off, or HPA metrics other than CPU and memory" $component $vpa.updateMode) }}
{{- end }}
{{- end }}
{{- if eq .Values.tls.mode "certManager" }}
{{- $cm := .Values.tls.certManager }}
{{- $duration := include "grpc-services.durationSeconds" $cm.duration | float64 }}
{{- $renewBefore := include "grpc-services.durationSeconds" $cm.renewBefore | float64 }}
{{- if lt $duration 3600.0 }}
{{- fail (printf "tls.certManager.duration %q is under 1h, which cert-manager refuses" $cm.duration) }}
{{- end }}
{{- if lt $renewBefore 300.0 }}
{{- fail (printf "tls.certManager.renewBefore %q is under 5m, which cert-manager refuses" $cm.renewBefore) }}
{{- end }}
{{- if ge $renewBefore $duration }}
{{- fail (printf "tls.certManager.renewBefore %q must be shorter than duration %q (cert-manager refuses it)" $cm.renewBefore $cm.duration) }}
{{- end }}
{{- if and (not $cm.issuerRef.name) (not $cm.caSecretName) (lt (include "grpc-services.durationSeconds" $cm.caDuration | float64) 3600.0) }}
{{- fail (printf "tls.certManager.caDuration %q is under 1h, which cert-manager refuses" $cm.caDuration) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Deployment of this name as it is in the cluster now, as YAML ({} if
none). `lookup` returns nothing offline (helm template, --dry-run, the chart
tests); only then is .Values.testExistingDeployments consulted, which the
tests use to stand in for the cluster. Takes (list $ "deployment-name").
*/}}
{{- define "grpc-services.liveDeployment" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $found := lookup "apps/v1" "Deployment" $root.Release.Namespace $name }}
{{- if $found }}
{{- toYaml $found }}
{{- else }}
{{- toYaml (index $root.Values.testExistingDeployments $name | default dict) }}
{{- end }}
{{- end }}
