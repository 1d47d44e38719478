"""OTLP trace export: what the services are told, and the values refused.

The schema must take every value the services take (https included) and
refuse, before anything is installed, what the services would refuse at
start with exit code 2 (a crash-looping pod otherwise).
"""

import helm_python
import pytest

from chart_helpers import render

COMPONENTS = ("service1", "service2")
GRPC = "http://collector.observability:4317"
CA_AND_CLIENT = {"secretName": "otel-client-tls", "clientCertificate": True}


def otel_env(rendered, component) -> dict[str, str]:
    """The export settings (the resource attributes are tested on their own)."""
    config = rendered.config(component).items()
    return {k: v for k, v in config if k.startswith("OTEL_") and k != "OTEL_RESOURCE_ATTRIBUTES"}


def pod_spec(rendered, component):
    return rendered.deployment(component)["spec"]["template"]["spec"]


def otel_volume(rendered, component):
    volumes = [v for v in pod_spec(rendered, component)["volumes"] if v["name"] == "otel-tls"]
    mounts = [m for m in rendered.container(component)["volumeMounts"] if m["name"] == "otel-tls"]
    return volumes, mounts


def test_without_an_endpoint_only_the_service_name_is_set(default):
    for component in COMPONENTS:
        assert otel_env(default, component) == {"OTEL_SERVICE_NAME": component}
        assert otel_volume(default, component) == ([], [])


def test_without_an_endpoint_the_other_otel_values_are_not_used():
    rendered = render({"otel": {"headersSecret": {"name": "otlp-token"}, "tls": CA_AND_CLIENT}})
    for component in COMPONENTS:
        assert otel_env(rendered, component) == {"OTEL_SERVICE_NAME": component}
        assert otel_volume(rendered, component) == ([], [])
        names = [e["name"] for e in rendered.container(component)["env"]]
        assert "OTEL_EXPORTER_OTLP_HEADERS" not in names


def test_an_endpoint_is_passed_with_the_protocol_and_compression():
    rendered = render({"otel": {"endpoint": GRPC}})
    for component in COMPONENTS:
        assert otel_env(rendered, component) == {
            "OTEL_SERVICE_NAME": component,
            "OTEL_EXPORTER_OTLP_ENDPOINT": GRPC,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        }


def test_http_protobuf_to_an_https_collector_with_gzip_is_passed_as_written():
    values = {"endpoint": "https://otlp.vendor.example/otlp", "protocol": "http/protobuf", "compression": "gzip"}
    env = otel_env(render({"otel": values}), "service2")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otlp.vendor.example/otlp"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_EXPORTER_OTLP_COMPRESSION"] == "gzip"
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE" not in env, "the system roots"


def test_headers_become_one_variable_with_values_percent_encoded():
    headers = {"x-scope-orgid": "team a", "x-list": "a,b%c"}
    env = otel_env(render({"otel": {"endpoint": GRPC, "headers": headers}}), "service1")
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == "x-list=a%2Cb%25c,x-scope-orgid=team%20a"


def test_headers_from_a_secret_stay_out_of_the_configmap():
    rendered = render(
        {
            "otel": {"endpoint": GRPC, "headersSecret": {"name": "otlp-token", "key": "value"}},
            "service2": {"extraEnv": [{"name": "OTEL_TRACES_SAMPLER", "value": "always_on"}]},
        }
    )
    for component in COMPONENTS:
        assert "OTEL_EXPORTER_OTLP_HEADERS" not in rendered.get("ConfigMap", f"hello-{component}-config")["data"]
        env = rendered.container(component)["env"]
        assert {
            "name": "OTEL_EXPORTER_OTLP_HEADERS",
            "valueFrom": {"secretKeyRef": {"name": "otlp-token", "key": "value"}},
        } in env
    # extraEnv still comes last, so it wins.
    assert rendered.container("service2")["env"][-1] == {"name": "OTEL_TRACES_SAMPLER", "value": "always_on"}


def test_the_tls_secret_is_mounted_read_only_and_named_in_the_variables():
    rendered = render({"otel": {"endpoint": "https://collector.observability:4317", "tls": CA_AND_CLIENT}})
    for component in COMPONENTS:
        volumes, mounts = otel_volume(rendered, component)
        assert volumes == [{"name": "otel-tls", "secret": {"secretName": "otel-client-tls", "defaultMode": 0o440}}]
        assert mounts == [{"name": "otel-tls", "mountPath": "/etc/otel-tls", "readOnly": True}]
        env = otel_env(rendered, component)
        assert env["OTEL_EXPORTER_OTLP_CERTIFICATE"] == "/etc/otel-tls/ca.crt"
        assert env["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"] == "/etc/otel-tls/tls.crt"
        assert env["OTEL_EXPORTER_OTLP_CLIENT_KEY"] == "/etc/otel-tls/tls.key"


def test_a_client_certificate_alone_keeps_the_system_roots():
    tls = {"secretName": "otel-client-tls", "caKey": "", "clientCertificate": True}
    env = otel_env(render({"otel": {"endpoint": "https://otlp.vendor.example:4317", "tls": tls}}), "service2")
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE" not in env
    assert env["OTEL_EXPORTER_OTLP_CLIENT_KEY"] == "/etc/otel-tls/tls.key"


def test_changing_the_export_settings_rolls_the_pods():
    def checksum(values):
        return render(values).deployment("service2")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({"otel": {"endpoint": GRPC}}) != checksum({"otel": {"endpoint": GRPC, "compression": "gzip"}})


ACCEPTED = {
    "https over gRPC": {"endpoint": "https://collector.observability:4317"},
    "a trailing slash over gRPC": {"endpoint": "http://collector:4317/"},
    "an IPv6 address": {"endpoint": "http://[fd00::1]:4317"},
    "a base path over HTTP": {"endpoint": "https://gateway.example/otlp", "protocol": "http/protobuf"},
    "a query over HTTP": {"endpoint": "https://gateway.example/v1/traces?tenant=a", "protocol": "http/protobuf"},
    "-bin header names over HTTP": {"endpoint": GRPC, "protocol": "http/protobuf", "headers": {"token-bin": "x"}},
    "a TLS Secret with an https endpoint": {"endpoint": "https://collector:4317", "tls": CA_AND_CLIENT},
    "TLS values kept while export is off": {"endpoint": "", "tls": CA_AND_CLIENT},
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_schema_accepts_what_the_services_accept(case):
    rendered = render({"otel": ACCEPTED[case]})
    assert rendered.deployment("service2")


REFUSED = {
    "http/json": ({"endpoint": GRPC, "protocol": "http/json"}, "/otel/protocol"),
    "zstd": ({"endpoint": GRPC, "compression": "zstd"}, "/otel/compression"),
    "a scheme other than http or https": ({"endpoint": "grpc://collector:4317"}, "/otel/endpoint"),
    "no scheme": ({"endpoint": "collector:4317"}, "/otel/endpoint"),
    "no host": ({"endpoint": "http://:4317"}, "/otel/endpoint"),
    "credentials in the URL": ({"endpoint": "https://user:pass@collector:4317"}, "/otel/endpoint"),
    "a path over gRPC": ({"endpoint": "http://collector:4317/v1/traces"}, "/otel/endpoint"),
    "a TLS Secret with an http endpoint": ({"endpoint": GRPC, "tls": {"secretName": "ca"}}, "/otel/endpoint"),
    "a client certificate without a Secret": ({"tls": {"clientCertificate": True}}, "/otel/tls/secretName"),
    "headers and a headers Secret": (
        {"headers": {"x-a": "1"}, "headersSecret": {"name": "token"}},
        "/otel/headersSecret/name",
    ),
    "an upper-case header name": ({"headers": {"X-Api-Key": "1"}}, "X-Api-Key"),
    "an empty header value": ({"headers": {"x-a": ""}}, "/otel/headers/x-a"),
    "a header value that is not printable ASCII": ({"headers": {"x-a": "caf\u00e9"}}, "/otel/headers/x-a"),
    "a -bin header name over gRPC": ({"endpoint": GRPC, "headers": {"token-bin": "x"}}, "token-bin"),
    "an unknown otel key": ({"sampler": "always_on"}, "sampler"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_schema_refuses_what_the_services_refuse(case):
    values, where = REFUSED[case]
    with pytest.raises(helm_python.HelmValuesError) as info:
        render({"otel": values})
    assert where in str(info.value)


def resource_attributes(rendered, component) -> dict[str, str]:
    env = {e["name"]: e for e in rendered.container(component)["env"]}
    value = env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    return dict(pair.split("=", 1) for pair in value.split(","))


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_pod_names_itself_in_its_spans_from_the_downward_api(default, component):
    env = {e["name"]: e for e in default.container(component)["env"]}

    fields = {name: env[name]["valueFrom"]["fieldRef"]["fieldPath"] for name in ("POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME")}
    assert fields == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "POD_UID": "metadata.uid",
        "NODE_NAME": "spec.nodeName",
    }
    # Kubernetes expands $(VAR) from the variables defined before it.
    names = [e["name"] for e in default.container(component)["env"]]
    assert names.index("OTEL_RESOURCE_ATTRIBUTES") > max(names.index(n) for n in fields)
    assert resource_attributes(default, component) == {
        "k8s.pod.name": "$(POD_NAME)",
        "k8s.namespace.name": "$(POD_NAMESPACE)",
        "k8s.node.name": "$(NODE_NAME)",
        "k8s.pod.uid": "$(POD_UID)",
        "service.instance.id": "$(POD_UID)",
        "service.namespace": default.fullname,
    }


def test_the_service_namespace_can_be_set():
    rendered = render({"otel": {"serviceNamespace": "shop"}})
    assert resource_attributes(rendered, "service1")["service.namespace"] == "shop"
