"""Every rendered object is valid for the Kubernetes versions the chart supports.

kubernetes_validate bundles the API server's OpenAPI schemas per version;
the strict variant also rejects unknown fields (a misspelt key is silently
dropped by the API server, so it would otherwise go unnoticed).
cert-manager's and prometheus-operator's kinds are not in those schemas: they
are checked against the subsets of cert-manager.io/v1 and
monitoring.coreos.com/v1 the chart uses, written out below.
"""

import jsonschema
import kubernetes_validate
import pytest
import yaml

from chart_helpers import REPO, render

# 1.27 is the chart's floor (native gRPC probes GA); 1.37 the newest bundled.
KUBE_VERSIONS = ["1.27.0", "1.29.0", "1.31.0", "1.37.0"]

_issuer_ref = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                   "group": {"type": "string"}},
}
_metadata = {"type": "object", "required": ["name", "namespace"]}
_duration = {"type": "string", "pattern": "^([0-9]+(ns|us|ms|s|m|h))+$"}


def _kind(spec):
    """An object of a custom kind whose `spec` has the schema `spec`."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"metadata": _metadata, "spec": spec},
    }


CERT_MANAGER = {
    "Certificate": _kind({
        "type": "object",
        "additionalProperties": False,
        "required": ["secretName", "issuerRef"],
        "properties": {
            "secretName": {"type": "string", "minLength": 1},
            "issuerRef": _issuer_ref,
            "commonName": {"type": "string", "maxLength": 64},
            "isCA": {"type": "boolean"},
            "dnsNames": {"type": "array", "items": {"type": "string"}},
            "uris": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+://"}},
            "usages": {"type": "array", "items": {"enum": [
                "signing", "digital signature", "content commitment", "key encipherment",
                "key agreement", "data encipherment", "cert sign", "crl sign", "encipher only",
                "decipher only", "any", "server auth", "client auth", "code signing",
                "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
                "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"]}},
            "duration": _duration,
            "renewBefore": _duration,
            "privateKey": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                    "size": {"type": "integer"},
                    "encoding": {"enum": ["PKCS1", "PKCS8"]},
                    "rotationPolicy": {"enum": ["Never", "Always"]},
                },
            },
        },
    }),
    "Issuer": _kind({
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {
            "selfSigned": {"type": "object"},
            "ca": {"type": "object", "additionalProperties": False, "required": ["secretName"],
                   "properties": {"secretName": {"type": "string", "minLength": 1}}},
        },
    }),
}

_string_map = {"type": "object", "additionalProperties": {"type": "string"}}
_prom_duration = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
# The subset of monitoring.coreos.com/v1 (prometheus-operator) the chart uses.
PROMETHEUS_OPERATOR = {
    "PodMonitor": _kind({
        "type": "object",
        "additionalProperties": False,
        "required": ["selector", "podMetricsEndpoints"],
        "properties": {
            "selector": {"type": "object", "properties": {"matchLabels": _string_map}},
            "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                               "interval": _prom_duration},
            }},
        },
    }),
    "PrometheusRule": _kind({
        "type": "object",
        "additionalProperties": False,
        "required": ["groups"],
        "properties": {"groups": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "rules"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "interval": _prom_duration,
                "rules": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["expr"],
                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                    "properties": {
                        "alert": {"type": "string"},
                        "record": {"type": "string"},
                        "expr": {"type": "string", "minLength": 1},
                        "for": _prom_duration,
                        "keep_firing_for": _prom_duration,
                        "labels": _string_map,
                        "annotations": _string_map,
                    },
                }},
            },
        }}},
    }),
}

# The subset of gateway.networking.k8s.io/v1 (Gateway API) the chart uses.
GATEWAY_API = {
    "HTTPRoute": _kind({
        "type": "object",
        "additionalProperties": False,
        "required": ["parentRefs", "rules"],
        "properties": {
            "parentRefs": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["name"]}},
            "hostnames": {"type": "array", "items": {"type": "string"}},
            "rules": {"type": "array", "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "matches": {"type": "array", "items": {"type": "object", "properties": {
                        "path": {"type": "object", "additionalProperties": False, "required": ["type", "value"],
                                 "properties": {"type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                                                "value": {"type": "string"}}}}}},
                    "backendRefs": {"type": "array", "items": {
                        "type": "object", "required": ["name", "port"],
                        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                },
            }},
        },
    }),
}

_quantities = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
# The subset of autoscaling.k8s.io/v1 (the VPA's CRD) the chart uses.
VPA = {
    "VerticalPodAutoscaler": _kind({
        "type": "object",
        "additionalProperties": False,
        "required": ["targetRef"],
        "properties": {
            "targetRef": {"type": "object", "additionalProperties": False, "required": ["kind", "name"],
                          "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                         "name": {"type": "string"}}},
            "updatePolicy": {"type": "object", "additionalProperties": False, "properties": {
                "updateMode": {"enum": ["Off", "Initial", "Recreate", "Auto"]}}},
            "resourcePolicy": {"type": "object", "additionalProperties": False, "properties": {
                "containerPolicies": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "containerName": {"type": "string"},
                        "mode": {"enum": ["Auto", "Off"]},
                        "controlledResources": {"type": "array", "items": {"enum": ["cpu", "memory"]}},
                        "controlledValues": {"enum": ["RequestsAndLimits", "RequestsOnly"]},
                        "minAllowed": _quantities,
                        "maxAllowed": _quantities,
                    }}}}},
        },
    }),
}

CASES = {
    "defaults (generate)": {},
    "certManager": {"tls": {"mode": "certManager"}},
    "certManager with an external issuer": {
        "tls": {"mode": "certManager", "certManager": {"issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}
    },
    "existingSecret": {"tls": {"mode": "existingSecret", "existingSecret": {"service1": "s1", "service2": "s2"}}},
    "certManager with a CA Secret": {"tls": {"mode": "certManager", "certManager": {"caSecretName": "ca-keypair"}}},
    "NetworkPolicy, HPA and OTel on": {
        "networkPolicy": {"enabled": True, "service1HttpFrom": [{"podSelector": {"matchLabels": {"a": "b"}}}],
                          "service2HttpFrom": [{"namespaceSelector": {"matchLabels": {"ingress": "yes"}}}]},
        "service1": {"autoscaling": {"enabled": True}, "extraEnv": [{"name": "A", "value": "b"}]},
        "service2": {"autoscaling": {"enabled": True}, "podAnnotations": {"x": "y"}},
        "otel": {"endpoint": "http://collector.observability:4317"},
        "imagePullSecrets": [{"name": "regcred"}],
    },
    "NetworkPolicy with extra gRPC clients and egress": {
        "networkPolicy": {"enabled": True,
                          "service1GrpcFrom": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}],
                          "egress": {"enabled": True, "otelTo": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                                     "extraRules": [{"ports": [{"port": 3128, "protocol": "TCP"}]}]}},
        "otel": {"endpoint": "http://collector.observability:4317"},
    },
    "platform values": {
        "image": {"digest": "sha256:" + "ab" * 32},
        "commonLabels": {"team": "payments"},
        "service1": {"serviceAccount": {"create": False, "name": "corp-s1"},
                     "pdb": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}},
        "service2": {"pdb": {"unhealthyPodEvictionPolicy": "IfHealthyBudget"}},
    },
    "service2 from outside: Ingress and HTTPRoute": {
        "service2": {
            "ingress": {"enabled": True, "className": "nginx", "hosts": ["hello.example.com"],
                        "tls": [{"secretName": "hello-tls", "hosts": ["hello.example.com"]}]},
            "httpRoute": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways"}],
                          "hostnames": ["hello.example.com"]},
        },
    },
    "monitoring on": {
        "monitoring": {"prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                       "podMonitor": {"enabled": True, "interval": "15s"}},
    },
    "OTLP over https with mTLS and headers from a Secret": {
        "otel": {
            "endpoint": "https://collector.observability:4318",
            "protocol": "http/protobuf",
            "compression": "gzip",
            "headersSecret": {"name": "otlp-token"},
            "tls": {"secretName": "otel-client-tls", "clientCertificate": True},
        },
        "service1": {"extraEnv": [{"name": "OTEL_TRACES_SAMPLER", "value": "always_on"}]},
    },
}


EVERYTHING_ON = REPO / "tests" / "chart" / "values-everything-on.yaml"
CASES["everything on (tests/chart/values-everything-on.yaml)"] = yaml.safe_load(EVERYTHING_ON.read_text())
CASES["extension points, OpenShift, VPA Auto, custom HPA metrics"] = {
    "global": {"imageRegistry": "mirror.local", "imagePullSecrets": ["mirror"],
               "compatibility": {"openshift": {"adaptSecurityContext": "force"}}},
    "service1": {"verticalPodAutoscaler": {"enabled": True, "updateMode": "Auto", "minAllowed": {"cpu": "10m"}},
                 "service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"],
                             "externalTrafficPolicy": "Local", "annotations": {"lb": "internal"}},
                 "lifecycle": {"preStop": {"exec": {"command": ["/bin/true"]}}},
                 "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}, "runtimeClassName": "gvisor"},
    "service2": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None,
                                 "metrics": [{"type": "Pods", "pods": {"metric": {"name": "rps"},
                                              "target": {"type": "AverageValue", "averageValue": "10"}}}],
                                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}},
                 "extraEnvFrom": [{"configMapRef": {"name": "more"}}]},
    "helmTest": {"nodeSelector": {"pool": "tests"}, "priorityClassName": "low",
                 "tolerations": [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}]},
}


def _check(obj, version):
    if obj["apiVersion"] == "cert-manager.io/v1":
        jsonschema.validate(obj, CERT_MANAGER[obj["kind"]])
    elif obj["apiVersion"] == "monitoring.coreos.com/v1":
        jsonschema.validate(obj, PROMETHEUS_OPERATOR[obj["kind"]])
    elif obj["apiVersion"] == "gateway.networking.k8s.io/v1":
        jsonschema.validate(obj, GATEWAY_API[obj["kind"]])
    elif obj["apiVersion"] == "autoscaling.k8s.io/v1":
        jsonschema.validate(obj, VPA[obj["kind"]])
    else:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_is_valid_for_the_supported_kubernetes_versions(case, version):
    rendered = render(CASES[case])
    assert rendered.objects
    for obj in rendered.objects:
        try:
            _check(obj, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as e:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for {version}: {e}")


def test_the_schema_check_catches_a_misspelt_field(default):
    """The strict schemas must reject what the API server would drop."""
    broken = dict(default.deployment("service1"))
    broken["spec"] = dict(broken["spec"], replica=3)
    with pytest.raises(kubernetes_validate.ValidationError):
        _check(broken, KUBE_VERSIONS[0])
    cert = render({"tls": {"mode": "certManager"}}).get("Certificate", "hello-service2")
    cert["spec"]["uriSANs"] = cert["spec"].pop("uris")
    with pytest.raises(jsonschema.ValidationError):
        _check(cert, KUBE_VERSIONS[0])


def test_every_object_lives_in_the_release_namespace():
    for case in CASES.values():
        for obj in render(case).objects:
            assert obj["metadata"].get("namespace") == "demo", f"{obj['kind']}/{obj['metadata']['name']}"
