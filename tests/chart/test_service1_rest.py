"""service1's plaintext REST endpoint (GET /api/v1/name) is no door around
mTLS (issue 22, defect 6): it can be turned off, and with NetworkPolicy on
nobody reaches it until networkPolicy.service1HttpFrom names a client."""

from chart_helpers import render

NO_REST = {"service1": {"http": {"enabled": False}}}


def http_rules(policy):
    return [r for r in policy["spec"]["ingress"] if any(p["port"] == "http" for p in r.get("ports", []))]


def test_service1_rest_is_on_by_default_as_the_original_api(default):
    assert default.config("service1")["REST_ENABLED"] == "true"
    assert default.get("Service", "hello-service1")["spec"]["ports"][0]["targetPort"] == "http"
    assert "http" in {p["name"] for p in default.container("service1")["ports"]}


def test_turning_service1_rest_off_removes_its_port_and_service():
    rendered = render(NO_REST)
    # service1 binds no REST port at all, so its pod IP has none either
    assert rendered.config("service1")["REST_ENABLED"] == "false"
    assert rendered.find("Service", "hello-service1") is None
    assert "http" not in {p["name"] for p in rendered.container("service1")["ports"]}
    # the gRPC Service and service2's REST Service stay
    assert rendered.get("Service", "hello-service1-grpc")
    assert rendered.get("Service", "hello-service2")


def test_with_network_policy_on_service1_rest_is_closed_to_everyone_by_default():
    policy = render({"networkPolicy": {"enabled": True}}).get("NetworkPolicy", "hello-service1")
    assert http_rules(policy) == []
    # and no rule without ports opens it by the back door
    assert all(r.get("ports") for r in policy["spec"]["ingress"])


def test_service1_http_from_opens_service1_rest_to_the_named_clients_only():
    client = {"podSelector": {"matchLabels": {"app": "legacy-client"}}}
    policy = render({"networkPolicy": {"enabled": True, "service1HttpFrom": [client]}}).get(
        "NetworkPolicy", "hello-service1")
    (rule,) = http_rules(policy)
    assert rule["from"] == [client]


def test_with_rest_off_no_policy_opens_service1_http_even_with_clients_listed():
    client = {"podSelector": {"matchLabels": {"app": "legacy-client"}}}
    policy = render({**NO_REST, "networkPolicy": {"enabled": True, "service1HttpFrom": [client]}}).get(
        "NetworkPolicy", "hello-service1")
    assert http_rules(policy) == []


def test_the_chart_readme_security_section_says_so():
    from chart_helpers import CHART
    text = (CHART / "README.md").read_text()
    section = text.split("\n## Security", 1)[1].split("\n## ", 1)[0]
    assert "service1.http.enabled" in section and "service1HttpFrom" in section


def test_notes_say_service1_rest_is_open_to_the_cluster_only_while_it_is(default):
    assert "service1's REST API (hello-service1, GET /api/v1/name) is" in default.notes
    assert "service1.http.enabled=false" in default.notes
    for values in (NO_REST, {"networkPolicy": {"enabled": True}}):
        assert "GET /api/v1/name" not in render(values).notes
