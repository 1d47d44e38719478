"""NetworkPolicy knobs a platform team needs: more gRPC clients, and egress."""

import pytest

from chart_helpers import pod_labels, render, selects

OPS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}},
       "podSelector": {"matchLabels": {"app": "debug"}}}
BLOCKED = "WARNING: service1.extraAllowedClients"
EGRESS = {"networkPolicy": {"enabled": True, "egress": {"enabled": True}}}


def grpc_rule(rendered):
    (rule,) = [r for r in rendered.get("NetworkPolicy", "hello-service1")["spec"]["ingress"]
               if any(p["port"] == "grpc" for p in r["ports"])]
    return rule


def egress(rendered, component):
    return rendered.get("NetworkPolicy", f"hello-{component}")["spec"]["egress"]


def rules_to_port(rules, port, protocol="TCP"):
    return [r for r in rules if {"port": port, "protocol": protocol} in r["ports"]]


def test_extra_grpc_clients_are_admitted_besides_service2():
    rendered = render({"networkPolicy": {"enabled": True, "service1GrpcFrom": [OPS]},
                       "service1": {"extraAllowedClients": ["spiffe://cluster.local/ns/ops/sa/debug"]}})
    peers = grpc_rule(rendered)["from"]
    assert OPS in peers
    assert any("podSelector" in p and set(p) == {"podSelector"} and selects(p["podSelector"], pod_labels(rendered, "service2"))
               for p in peers)
    assert BLOCKED not in rendered.notes


def test_notes_warn_when_allowed_clients_would_be_blocked_by_the_policy():
    values = {"networkPolicy": {"enabled": True},
              "service1": {"extraAllowedClients": ["spiffe://cluster.local/ns/ops/sa/debug"]}}
    notes = render(values).notes
    assert BLOCKED in notes and "networkPolicy.service1GrpcFrom" in notes
    # No policy, or no extra clients: nothing to warn about.
    assert BLOCKED not in render({"service1": values["service1"]}).notes
    assert BLOCKED not in render({"networkPolicy": {"enabled": True}}).notes


def test_egress_is_unrestricted_unless_asked():
    rendered = render({"networkPolicy": {"enabled": True}})
    for component in ("service1", "service2"):
        spec = rendered.get("NetworkPolicy", f"hello-{component}")["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        assert "egress" not in spec


@pytest.mark.parametrize("component", ["service1", "service2"])
def test_egress_allows_dns_to_the_cluster_dns_only(component):
    rendered = render(EGRESS)
    spec = rendered.get("NetworkPolicy", f"hello-{component}")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (udp,) = rules_to_port(spec["egress"], 53, "UDP")
    (tcp,) = rules_to_port(spec["egress"], 53, "TCP")
    assert udp is tcp
    kube_dns = {"metadata": {"namespace": "kube-system"}, "labels": {"k8s-app": "kube-dns"}}
    (peer,) = udp["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": kube_dns["metadata"]["namespace"]}
    assert selects(peer["podSelector"], kube_dns["labels"])
    # Every rule names its ports: a rule without ports would open everything.
    assert all(r.get("ports") for r in spec["egress"])


def test_only_service2_may_reach_service1_and_only_its_grpc_port():
    rendered = render({**EGRESS, "service1": {"ports": {"grpc": 6000}}})
    (rule,) = rules_to_port(egress(rendered, "service2"), 6000)
    (peer,) = rule["to"]
    assert set(peer) == {"podSelector"}
    assert selects(peer["podSelector"], pod_labels(rendered, "service1"))
    assert rule["ports"] == [{"port": 6000, "protocol": "TCP"}]
    assert rules_to_port(egress(rendered, "service1"), 6000) == []


def test_no_otlp_rule_without_an_endpoint():
    rendered = render(EGRESS)
    for component in ("service1", "service2"):
        ports = {p["port"] for r in egress(rendered, component) for p in r["ports"]}
        assert ports <= {53, 50051}


@pytest.mark.parametrize("endpoint, protocol, port", [
    ("http://otel-collector.observability:4317", "grpc", 4317),
    ("http://otel-collector.observability:4318", "http/protobuf", 4318),
    ("https://otlp.vendor.example", "http/protobuf", 443),
    ("http://otel-collector.observability", "grpc", 80),
    ("https://[fd00::1]:14317", "grpc", 14317),
    ("https://otlp.vendor.example/prefix?a=b:1", "http/protobuf", 443),
])
def test_egress_allows_the_otlp_endpoints_port(endpoint, protocol, port):
    collector = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
    rendered = render({**EGRESS, "otel": {"endpoint": endpoint, "protocol": protocol}})
    for component in ("service1", "service2"):
        (rule,) = rules_to_port(egress(rendered, component), port)
        assert "to" not in rule  # otelTo empty: any address, that port only
    scoped = render({"networkPolicy": {"enabled": True, "egress": {"enabled": True, "otelTo": [collector]}},
                     "otel": {"endpoint": endpoint, "protocol": protocol}})
    for component in ("service1", "service2"):
        (rule,) = rules_to_port(egress(scoped, component), port)
        assert rule["to"] == [collector]


def test_dns_peers_and_extra_rules_follow_values():
    node_dns = {"ipBlock": {"cidr": "169.254.20.10/32"}}
    proxy = {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 3128, "protocol": "TCP"}]}
    rendered = render({"networkPolicy": {"enabled": True, "egress": {
        "enabled": True, "dnsTo": [node_dns], "extraRules": [proxy]}}})
    for component in ("service1", "service2"):
        rules = egress(rendered, component)
        (dns,) = rules_to_port(rules, 53, "UDP")
        assert dns["to"] == [node_dns]
        assert proxy in rules
    anywhere = render({"networkPolicy": {"enabled": True, "egress": {"enabled": True, "dnsTo": []}}})
    (dns,) = rules_to_port(egress(anywhere, "service1"), 53, "UDP")
    assert "to" not in dns
