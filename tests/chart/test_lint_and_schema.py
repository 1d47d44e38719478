"""helm lint, and values.schema.json turning bad values away."""

import helm_python
import pytest

from chart_helpers import CHART, render

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
        "networkPolicy": {"enabled": True, "service2HttpFrom": [{"namespaceSelector": {}}]},
        "service1": {"autoscaling": {"enabled": True}},
        "service2": {"autoscaling": {"enabled": True}},
        "otel": {"endpoint": "http://collector.observability:4317"},
    },
    "OTLP over https with mTLS and headers from a Secret": {
        "otel": {
            "endpoint": "https://collector.observability:4317",
            "headersSecret": {"name": "otlp-token"},
            "tls": {"secretName": "otel-client-tls", "clientCertificate": True},
        },
    },
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
    assert meta["version"] == "0.1.0"
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
