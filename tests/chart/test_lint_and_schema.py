"""helm lint, and values.schema.json turning bad values away."""

import helm_python
import pytest
import yaml

from chart_helpers import CHART, REPO, render

# Severity in helm_python.lint's report: 1 info, 2 warning, 3 error.
WARNING = 2

MODES = {
    "generate": {},
    "certManager": {"tls": {"mode": "certManager"}},
    "certManager with an external issuer": {
        "tls": {"mode": "certManager", "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}
    },
    "existingSecret": {"tls": {"mode": "existingSecret", "existingSecret": {"service1": "s1", "service2": "s2"}}},
    "every optional object on": {
        "networkPolicy": {"enabled": True, "service2HttpFrom": [{"namespaceSelector": {}}],
                          "service1GrpcFrom": [{"namespaceSelector": {}}], "egress": {"enabled": True}},
        "service1": {"autoscaling": {"enabled": True}},
        "service2": {"autoscaling": {"enabled": True}},
        "otel": {"endpoint": "http://collector.observability:4317"},
        "monitoring": {"prometheusRule": {"enabled": True}},
    },
    "OTLP over https with mTLS and headers from a Secret": {
        "otel": {
            "endpoint": "https://collector.observability:4317",
            "headersSecret": {"name": "otlp-token"},
            "tls": {"secretName": "otel-client-tls", "clientCertificate": True},
        },
    },
}


EVERYTHING_ON = yaml.safe_load((REPO / "tests" / "chart" / "values-everything-on.yaml").read_text())
MODES["everything on (tests/chart/values-everything-on.yaml)"] = EVERYTHING_ON
MODES["extension points with CRDs: VPA, HPA metrics, OpenShift"] = {
    "global": {"imageRegistry": "mirror.local", "compatibility": {"openshift": {"adaptSecurityContext": "force"}}},
    "service1": {"verticalPodAutoscaler": {"enabled": True, "updateMode": "Initial"},
                 "service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}},
    "service2": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None,
                                 "metrics": [{"type": "External", "external": {
                                     "metric": {"name": "queue"}, "target": {"type": "Value", "value": "5"}}}]}},
    "monitoring": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "tls": {"mode": "certManager"},
}


@pytest.mark.parametrize("kube_version", ["v1.27.0", "v1.31.0"])
@pytest.mark.parametrize("case", sorted(MODES))
def test_helm_lint_strict_reports_no_warning_or_error(case, kube_version):
    report = helm_python.lint(CHART, MODES[case], strict=True, kube_version=kube_version)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    serious = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert serious == []


def test_chart_declares_the_kubernetes_versions_with_native_grpc_probes():
    with helm_python.Chart.load(CHART) as chart:
        meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "grpc-services"
    assert meta["version"] == "0.2.0"
    assert meta["appVersion"] == "0.1.0"
    assert meta["kubeVersion"] == ">=1.27.0-0"


BAD_VALUES = {
    "unknown TLS mode": ({"tls": {"mode": "bogus"}}, "/tls/mode"),
    "plaintext gRPC is not offered": ({"tls": {"mode": "insecure"}}, "/tls/mode"),
    "replicas as words": ({"service1": {"replicas": "three"}}, "/service1/replicas"),
    "duration as a string": ({"drainDelaySeconds": "5s"}, "/drainDelaySeconds"),
    "port out of range": ({"service2": {"ports": {"http": 70000}}}, "/service2/ports/http"),
    "unknown log format": ({"logFormat": "xml"}, "/logFormat"),
    "misspelt top-level key": ({"replicaCount": 3}, "replicaCount"),
    "misspelt nested key": ({"service1": {"replica": 3}}, "replica"),
    "misspelt TLS key": ({"tls": {"existingSecrets": {}}}, "existingSecrets"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values_and_names_the_key(case):
    values, where = BAD_VALUES[case]
    with pytest.raises(helm_python.HelmValuesError) as info:
        render(values)
    assert where in str(info.value)


def test_schema_accepts_the_documented_alternatives():
    rendered = render(
        {
            "logFormat": "text",
            "service1": {"pdb": {"maxUnavailable": "50%"}},
            "service2": {"extraEnv": [{"name": "SERVICE1_CONNECT_TIMEOUT", "value": "2s"}]},
            "topologySpread": {"whenUnsatisfiable": "DoNotSchedule"},
        }
    )
    assert rendered.config("service1")["LOG_FORMAT"] == "text"
    assert rendered.config("service2")["SERVICE1_CONNECT_TIMEOUT"] == "2s"


# --- what the API server or cert-manager would refuse, the schema refuses ---

API_REFUSES = {
    "liveness successThreshold other than 1": (
        {"service1": {"probes": {"liveness": {"successThreshold": 2}}}}, "/service1/probes/liveness"),
    "startup successThreshold other than 1": (
        {"service2": {"probes": {"startup": {"successThreshold": 3}}}}, "/service2/probes/startup"),
    "an RSA key of 256 bits": (
        {"tls": {"mode": "certManager", "certManager": {"privateKey": {"algorithm": "RSA", "size": 256}}}},
        "/tls/certManager/privateKey/size"),
    "an RSA key of 1024 bits": (
        {"tls": {"certManager": {"privateKey": {"algorithm": "RSA", "size": 1024}}}},
        "/tls/certManager/privateKey/size"),
    "an ECDSA key of 2048 bits": (
        {"tls": {"certManager": {"privateKey": {"algorithm": "ECDSA", "size": 2048}}}},
        "/tls/certManager/privateKey/size"),
    "a fractional image tag": ({"image": {"tag": 1.5}}, "/image/tag"),
}


@pytest.mark.parametrize("case", sorted(API_REFUSES))
def test_schema_refuses_what_kubernetes_or_cert_manager_would_refuse(case):
    values, where = API_REFUSES[case]
    with pytest.raises(helm_python.HelmValuesError) as info:
        render(values)
    assert where in str(info.value)


def test_readiness_may_need_several_successes():
    rendered = render({"service1": {"probes": {"readiness": {"successThreshold": 2}}}})
    assert rendered.container("service1")["readinessProbe"]["successThreshold"] == 2


@pytest.mark.parametrize("size", [2048, 4096])
def test_rsa_keys_of_2048_bits_and_more_are_accepted(size):
    rendered = render({"tls": {"mode": "certManager", "certManager": {"privateKey": {"algorithm": "RSA", "size": size}}}})
    assert rendered.get("Certificate", "hello-service1")["spec"]["privateKey"]["size"] == size


@pytest.mark.parametrize("expression, image", [
    ("image.tag=1234567", "ghcr.io/example/grpc-services:1234567"),
    ("image.tag=20240101", "ghcr.io/example/grpc-services:20240101"),
    ("image.tag=v1.2.3", "ghcr.io/example/grpc-services:v1.2.3"),
])
def test_a_numeric_image_tag_from_set_is_accepted_and_written_whole(expression, image):
    rendered = render(helm_python.parse_set_string(expression))
    for component in ("service1", "service2"):
        assert rendered.container(component)["image"] == image


def test_a_numeric_image_tag_from_a_values_file_is_written_whole():
    values = helm_python.values_from_yaml("image:\n  tag: 1234567\n")
    assert render(values).container("service1")["image"] == "ghcr.io/example/grpc-services:1234567"


# --- as a subchart ----------------------------------------------------------


def test_global_values_the_chart_does_not_use_are_accepted_and_ignored(default):
    rendered = render({"global": {"storageClass": "fast", "labels": {"team": "a"}}})
    assert [o["metadata"]["name"] for o in rendered.objects if o["kind"] != "Secret"] == [
        o["metadata"]["name"] for o in default.objects if o["kind"] != "Secret"]


def test_the_chart_renders_as_a_subchart_of_an_umbrella_chart_passing_global(tmp_path):
    import shutil

    umbrella = tmp_path / "platform"
    (umbrella / "charts").mkdir(parents=True)
    shutil.copytree(CHART, umbrella / "charts" / "grpc-services")
    (umbrella / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\n"
        "dependencies:\n  - name: grpc-services\n    version: 0.2.0\n")
    (umbrella / "values.yaml").write_text(
        "global:\n  imageRegistry: registry.local\n  labels: {team: a}\n"
        "grpc-services:\n  service1:\n    replicas: 4\n")
    with helm_python.Chart.load(umbrella) as chart:
        sources = chart.render(values={}, name="hello", namespace="demo", is_install=True)
    deployments = [t for p, t in sources.items() if p.endswith("deployment.yaml")]
    assert deployments and "replicas: 4" in deployments[0]


# --- issue 22, defect 4: more that the API server or cert-manager refuses ----

REFUSED = {
    "maxSurge 0 with maxUnavailable 0 (a rollout could never make progress)": (
        {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}, "rollingUpdate"),
    "maxSurge 0% with maxUnavailable 0": (
        {"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}}, "rollingUpdate"),
    "HPA minReplicas above maxReplicas": (
        {"service1": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}},
        "service1.autoscaling.minReplicas"),
    "the same topology key twice": (
        {"topologySpread": {"topologyKeys": ["kubernetes.io/hostname", "kubernetes.io/hostname"]}},
        "/topologySpread/topologyKeys"),
    "a certificate shorter than 1h": (
        {"tls": {"mode": "certManager", "certManager": {"duration": "59m", "renewBefore": "10m"}}},
        "tls.certManager.duration"),
    "renewBefore shorter than 5m": (
        {"tls": {"mode": "certManager", "certManager": {"duration": "2h", "renewBefore": "4m59s"}}},
        "tls.certManager.renewBefore"),
    "renewBefore not shorter than the duration": (
        {"tls": {"mode": "certManager", "certManager": {"duration": "2h", "renewBefore": "120m"}}},
        "tls.certManager.renewBefore"),
    "a CA certificate shorter than 1h": (
        {"tls": {"mode": "certManager", "certManager": {"caDuration": "30m"}}}, "tls.certManager.caDuration"),
    "a PDB that blocks every drain (maxUnavailable 0)": (
        {"service1": {"pdb": {"maxUnavailable": 0}}}, "/service1/pdb/maxUnavailable"),
    "a PDB that blocks every drain (maxUnavailable 0%)": (
        {"service2": {"pdb": {"maxUnavailable": "0%"}}}, "/service2/pdb/maxUnavailable"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_values_the_api_server_or_cert_manager_would_refuse_are_refused_at_render(case):
    values, where = REFUSED[case]
    with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)) as info:
        render(values)
    assert where in str(info.value)


@pytest.mark.parametrize("values", [
    {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
    {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
    {"service1": {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 4}}},
    {"tls": {"mode": "certManager", "certManager": {"duration": "1h", "renewBefore": "5m", "caDuration": "1h30m"}}},
], ids=["maxSurge 0", "percentages", "min equals max", "the shortest lifetimes"])
def test_the_limits_themselves_are_accepted(values):
    assert render(values).objects
