"""What a user sees after installing: NOTES.txt, and `helm test`."""

import pytest

from chart_helpers import render


@pytest.mark.parametrize("release, namespace", [("hello", "demo"), ("shop", "prod")])
def test_notes_show_how_to_reach_service2(release, namespace):
    notes = render(name=release, namespace=namespace).notes
    lines = [line.strip() for line in notes.splitlines()]
    assert f"kubectl port-forward svc/{release}-service2 8081:80 -n {namespace}" in lines
    assert "curl -i 'localhost:8081/api/v1/say-hello?name=test' -H 'X-Request-ID: 12345'" in lines


def test_notes_port_forward_names_a_service_and_port_that_exist(default):
    line = next(l for l in default.notes.splitlines() if "port-forward" in l)
    target, mapping = line.split()[2:4]
    svc = default.get("Service", target.removeprefix("svc/"))
    assert int(mapping.split(":")[1]) == svc["spec"]["ports"][0]["port"]


def hook_pods(rendered):
    return [p for p in rendered.all("Pod") if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]


def test_helm_test_calls_service2_with_the_charts_own_smoke_binary(default):
    (pod,) = hook_pods(default)
    (container,) = pod["spec"]["containers"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["image"] == default.container("service2")["image"]
    assert container["command"] == [
        "/usr/local/bin/smoke",
        "--connect-wait",
        "30",
        "http://hello-service2.demo.svc/api/v1/say-hello?name=helm",
        '"Hello, HELM!"',
    ]
    assert "args" not in container
    assert default.get("Service", "hello-service2")["spec"]["ports"][0]["port"] == 80


def test_helm_test_follows_the_image_and_the_service_port():
    rendered = render({"image": {"repository": "registry.local/gs", "tag": "9.9.9"},
                       "service2": {"service": {"port": 8000}}}, namespace="prod")
    (pod,) = hook_pods(rendered)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "registry.local/gs:9.9.9"
    assert container["command"][3] == "http://hello-service2.prod.svc:8000/api/v1/say-hello?name=helm"
    assert "kubectl port-forward svc/hello-service2 8081:8000 -n prod" in rendered.notes
