"""Labels merge as maps and strings stay strings (issue 22, defects 1 to 3).

A label written twice in one mapping, or a name that YAML reads as a number
or a boolean, is refused by the API server or, worse, silently changes what
a selector matches. chart_helpers.render loads every manifest with a YAML
loader that refuses a key written twice.
"""

import helm_python
import pytest

from chart_helpers import pod_labels, render, selects

SELECTOR_KEYS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")


@pytest.mark.parametrize("values", [
    {"commonLabels": {"app.kubernetes.io/name": "foo", "app.kubernetes.io/instance": "bar"}},
    {"service1": {"podLabels": {"app.kubernetes.io/component": "x", "app.kubernetes.io/name": "y"}}},
    {"commonLabels": {"app.kubernetes.io/component": "c"}, "service1": {"podLabels": {"app.kubernetes.io/instance": "i"}}},
], ids=["commonLabels", "podLabels", "both"])
def test_extra_labels_never_override_the_selector_labels_of_the_pod_template(values):
    rendered = render(values)
    for component in ("service1", "service2"):
        deployment = rendered.deployment(component)
        labels = pod_labels(rendered, component)
        assert selects(deployment["spec"]["selector"], labels), labels
        for key in SELECTOR_KEYS:
            assert labels[key] == deployment["spec"]["selector"]["matchLabels"][key]


def test_common_labels_cannot_rename_the_chart_labels_of_any_object():
    rendered = render({"commonLabels": {"app.kubernetes.io/name": "foo", "helm.sh/chart": "x", "team": "a"},
                       "monitoring": {"grafanaDashboard": {"enabled": True}, "podMonitor": {"enabled": True}}})
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "grpc-services", f"{obj['kind']}/{obj['metadata']['name']}"
        assert labels["helm.sh/chart"].startswith("grpc-services-")
        assert labels["team"] == "a"


def test_pod_labels_are_added_to_the_pod_template_only():
    rendered = render({"service1": {"podLabels": {"sidecar.istio.io/inject": "false"}}})
    assert pod_labels(rendered, "service1")["sidecar.istio.io/inject"] == "false"
    assert "sidecar.istio.io/inject" not in rendered.deployment("service1")["metadata"]["labels"]
    assert "sidecar.istio.io/inject" not in pod_labels(rendered, "service2")


# --- defect 2: strings that look like numbers or booleans stay strings -------

def test_a_numeric_service_account_name_stays_a_string():
    rendered = render({"service1": {"serviceAccount": {"name": "1234"}},
                       "service2": {"serviceAccount": {"create": False, "name": "5678"}}})
    assert rendered.deployment("service1")["spec"]["template"]["spec"]["serviceAccountName"] == "1234"
    assert rendered.deployment("service2")["spec"]["template"]["spec"]["serviceAccountName"] == "5678"
    assert rendered.get("ServiceAccount", "1234")["metadata"]["name"] == "1234"


def test_existing_secret_names_that_look_like_numbers_stay_strings():
    rendered = render({"tls": {"mode": "existingSecret", "existingSecret": {"service1": "1234", "service2": "0"}}})
    names = {c: rendered.deployment(c)["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"]
             for c in ("service1", "service2")}
    assert names == {"service1": "1234", "service2": "0"}


def test_otel_secret_names_and_keys_that_look_like_numbers_stay_strings():
    rendered = render({"otel": {"endpoint": "https://collector:4317",
                                "headersSecret": {"name": "1234", "key": "42"},
                                "tls": {"secretName": "5678"}}})
    container = rendered.container("service1")
    (headers,) = [e for e in container["env"] if e["name"] == "OTEL_EXPORTER_OTLP_HEADERS"]
    assert headers["valueFrom"]["secretKeyRef"] == {"name": "1234", "key": "42"}
    volumes = rendered.deployment("service1")["spec"]["template"]["spec"]["volumes"]
    assert [v["secret"]["secretName"] for v in volumes if v["name"] == "otel-tls"] == ["5678"]


def test_a_priority_class_named_true_stays_a_string():
    rendered = render({"service1": {"priorityClassName": "true"}, "service2": {"priorityClassName": "1"}})
    assert rendered.deployment("service1")["spec"]["template"]["spec"]["priorityClassName"] == "true"
    assert rendered.deployment("service2")["spec"]["template"]["spec"]["priorityClassName"] == "1"


def test_an_ingress_class_named_1_stays_a_string():
    rendered = render({"service2": {"ingress": {"enabled": True, "className": "1", "hosts": ["a.example.com"]}}})
    assert rendered.all("Ingress")[0]["spec"]["ingressClassName"] == "1"


def test_a_ca_secret_name_that_looks_like_a_number_stays_a_string():
    rendered = render({"tls": {"mode": "certManager", "certManager": {"caSecretName": "1234"}}})
    assert rendered.get("Issuer", "hello-ca")["spec"]["ca"]["secretName"] == "1234"


@pytest.mark.parametrize("name", ["Bad Name", "-x", "x" * 64, "a/b"])
def test_name_override_must_be_a_valid_label_value(name):
    with pytest.raises(helm_python.HelmValuesError, match="nameOverride"):
        render({"nameOverride": name})


def test_a_numeric_name_override_stays_a_string_label():
    rendered = render({"nameOverride": "123"})
    assert pod_labels(rendered, "service1")["app.kubernetes.io/name"] == "123"


# --- defect 3: a dashboard label set to null -----------------------------------

def test_a_dashboard_label_removed_with_null_leaves_valid_yaml():
    rendered = render({"monitoring": {"grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": None}}}})
    dashboard = rendered.get("ConfigMap", "hello-dashboard")
    assert "grafana_dashboard" not in dashboard["metadata"]["labels"]
    assert dashboard["metadata"]["labels"]["app.kubernetes.io/name"] == "grpc-services"
