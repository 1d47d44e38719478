"""Optional NetworkPolicies: service1's gRPC port is for service2 only."""

from chart_helpers import pod_labels, render, selects

ENABLED = {"networkPolicy": {"enabled": True}}


def test_no_network_policy_unless_enabled(default):
    assert default.all("NetworkPolicy") == []


def rules_for_port(policy, port):
    return [r for r in policy["spec"]["ingress"] if any(p["port"] == port for p in r.get("ports", []))]


def test_service1_grpc_port_accepts_only_service2_pods():
    rendered = render(ENABLED)
    policy = rendered.get("NetworkPolicy", "hello-service1")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert selects(policy["spec"]["podSelector"], pod_labels(rendered, "service1"))
    # No rule without ports: such a rule would open every port, gRPC included.
    assert all(r.get("ports") for r in policy["spec"]["ingress"])
    (grpc_rule,) = rules_for_port(policy, "grpc")
    assert [p["port"] for p in grpc_rule["ports"]] == ["grpc"]
    (peer,) = grpc_rule["from"]
    assert set(peer) == {"podSelector"}  # same namespace, by pod labels only
    assert selects(peer["podSelector"], pod_labels(rendered, "service2"))
    assert not selects(peer["podSelector"], pod_labels(rendered, "service1"))
    test_pod = rendered.all("Pod")[0]["metadata"]["labels"]
    assert not selects(peer["podSelector"], test_pod)


def test_admin_ports_are_open_to_the_cluster_for_metrics():
    rendered = render(ENABLED)
    for component in ("service1", "service2"):
        (rule,) = rules_for_port(rendered.get("NetworkPolicy", f"hello-{component}"), "admin")
        assert rule["from"] == [{"namespaceSelector": {}}]


def test_service2_rest_port_is_open_unless_sources_are_given():
    rendered = render(ENABLED)
    (rule,) = rules_for_port(rendered.get("NetworkPolicy", "hello-service2"), "http")
    assert "from" not in rule


def test_restricted_rest_port_still_lets_the_helm_test_pod_in():
    ingress = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    rendered = render({"networkPolicy": {"enabled": True, "service2HttpFrom": [ingress]}})
    (rule,) = rules_for_port(rendered.get("NetworkPolicy", "hello-service2"), "http")
    assert ingress in rule["from"]
    test_pod = rendered.all("Pod")[0]["metadata"]["labels"]
    assert any("podSelector" in peer and selects(peer["podSelector"], test_pod) for peer in rule["from"])


def test_policies_name_ports_the_containers_really_have():
    rendered = render(ENABLED)
    for component in ("service1", "service2"):
        names = {p["name"] for p in rendered.container(component)["ports"]}
        for rule in rendered.get("NetworkPolicy", f"hello-{component}")["spec"]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= names
