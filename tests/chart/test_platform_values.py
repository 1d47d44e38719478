"""Values a platform team expects from a chart: digests, common labels,
ServiceAccounts of their own, PDB eviction policy, helm test clean-up,
Chart.yaml metadata."""

import helm_python
import pytest

from chart_helpers import CHART, render

DIGEST = "sha256:" + "ab" * 32


def test_a_digest_pins_every_container_image():
    rendered = render({"image": {"digest": DIGEST, "tag": "ignored"}})
    images = {c["image"] for _, spec in rendered.pod_specs() for c in spec["containers"]}
    assert images == {f"ghcr.io/example/grpc-services@{DIGEST}"}


def test_a_digest_must_be_a_sha256():
    with pytest.raises(helm_python.HelmValuesError, match="/image/digest"):
        render({"image": {"digest": "latest"}})


def test_common_labels_are_on_every_object_and_pod_but_not_in_selectors():
    rendered = render({"commonLabels": {"team": "payments", "cost-center": "42"},
                       "networkPolicy": {"enabled": True}, "monitoring": {"prometheusRule": {"enabled": True}}})
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("team") == "payments", f"{obj['kind']}/{obj['metadata']['name']}"
    for component in ("service1", "service2"):
        deployment = rendered.deployment(component)
        assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "payments"
        # Selectors are immutable: adding a common label must not change them.
        assert "team" not in deployment["spec"]["selector"]["matchLabels"]


def test_service_accounts_are_created_by_default(default):
    names = sorted(sa["metadata"]["name"] for sa in default.all("ServiceAccount"))
    assert names == ["hello-service1", "hello-service2"]


def test_a_service_account_of_your_own_is_used_and_named_in_the_spiffe_id():
    rendered = render({"tls": {"mode": "certManager"},
                       "service2": {"serviceAccount": {"create": False, "name": "corp-hello"}}})
    assert [sa["metadata"]["name"] for sa in rendered.all("ServiceAccount")] == ["hello-service1"]
    spec = rendered.deployment("service2")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "corp-hello"
    spiffe = "spiffe://cluster.local/ns/demo/sa/corp-hello"
    assert rendered.get("Certificate", "hello-service2")["spec"]["uris"] == [spiffe]
    assert spiffe in rendered.config("service1")["TLS_ALLOWED_CLIENTS"].split(",")


def test_without_a_service_account_the_pods_run_as_default():
    rendered = render({"service1": {"serviceAccount": {"create": False}}})
    assert rendered.deployment("service1")["spec"]["template"]["spec"]["serviceAccountName"] == "default"


def test_a_created_service_account_may_be_renamed():
    rendered = render({"service1": {"serviceAccount": {"name": "s1"}}})
    assert rendered.get("ServiceAccount", "s1")
    assert rendered.deployment("service1")["spec"]["template"]["spec"]["serviceAccountName"] == "s1"


def test_pdb_unhealthy_pod_eviction_policy_is_passed_through(default):
    for pdb in default.all("PodDisruptionBudget"):
        assert "unhealthyPodEvictionPolicy" not in pdb["spec"]
    rendered = render({"service1": {"pdb": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}}})
    assert rendered.get("PodDisruptionBudget", "hello-service1")["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    with pytest.raises(helm_python.HelmValuesError, match="unhealthyPodEvictionPolicy"):
        render({"service1": {"pdb": {"unhealthyPodEvictionPolicy": "Sometimes"}}})


def test_the_helm_test_pod_is_deleted_when_it_passes_and_kept_when_it_fails(default):
    (pod,) = [p for p in default.all("Pod") if p["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    policies = set(pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(","))
    assert policies == {"before-hook-creation", "hook-succeeded"}


def test_chart_yaml_says_where_the_project_lives():
    with helm_python.Chart.load(CHART) as chart:
        meta = chart.metadata
    assert meta["home"].startswith("https://")
    assert meta["sources"] and all(s.startswith("https://") for s in meta["sources"])
    assert meta["icon"].startswith("https://") and meta["icon"].endswith("icon.svg")
    assert (CHART / "icon.svg").read_text().startswith("<svg")


def test_an_ingress_sends_say_hello_to_service2_for_each_host():
    rendered = render({"service2": {"ingress": {"enabled": True, "className": "nginx",
                                                "hosts": ["a.example.com", "b.example.com"]}}})
    (ingress,) = rendered.all("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["a.example.com", "b.example.com"]
    for rule in ingress["spec"]["rules"]:
        (path,) = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/api/v1/say-hello", "Exact")
        assert path["backend"]["service"] == {"name": "hello-service2", "port": {"number": 80}}


def test_an_ingress_needs_a_host():
    with pytest.raises(helm_python.HelmValuesError, match="hosts"):
        render({"service2": {"ingress": {"enabled": True}}})


def test_an_http_route_attaches_say_hello_to_the_gateway():
    rendered = render({"service2": {"httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}]}}})
    (route,) = rendered.all("HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "public"}]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "Exact", "value": "/api/v1/say-hello"}}]
    assert rule["backendRefs"] == [{"name": "hello-service2", "port": 80}]


def test_an_http_route_needs_a_gateway():
    with pytest.raises(helm_python.HelmValuesError, match="parentRefs"):
        render({"service2": {"httpRoute": {"enabled": True}}})


def test_nothing_is_exposed_outside_by_default(default):
    assert default.all("Ingress") == [] and default.all("HTTPRoute") == []


def test_common_annotations_are_on_every_object_and_its_own_annotations_win():
    rendered = render({
        "commonAnnotations": {"owner": "payments", "helm.sh/hook": "not-this"},
        "networkPolicy": {"enabled": True},
        "monitoring": {"prometheusRule": {"enabled": True}, "podMonitor": {"enabled": True},
                       "grafanaDashboard": {"enabled": True, "folder": "Payments"}},
        "service2": {"ingress": {"enabled": True, "hosts": ["a.example.com"], "annotations": {"owner": "edge"}},
                     "httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}]}},
    })
    for obj in rendered.objects:
        annotations = obj["metadata"].get("annotations", {})
        assert "owner" in annotations, f"{obj['kind']}/{obj['metadata']['name']}"
    (ingress,) = rendered.all("Ingress")
    assert ingress["metadata"]["annotations"]["owner"] == "edge"
    (test_pod,) = [o for o in rendered.objects if o["kind"] == "Pod"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    for component in ("service1", "service2"):
        pod = rendered.deployment(component)["spec"]["template"]["metadata"]
        assert "owner" not in pod.get("annotations", {})


def test_chart_yaml_has_maintainers_and_artifact_hub_metadata():
    import yaml
    with helm_python.Chart.load(CHART) as chart:
        meta = chart.metadata
    assert meta["maintainers"] and all(m["name"] for m in meta["maintainers"])
    annotations = meta["annotations"]
    assert annotations["artifacthub.io/license"] == "MIT"
    links = yaml.safe_load(annotations["artifacthub.io/links"])
    assert all(link["url"].startswith("https://") for link in links)
    (image,) = yaml.safe_load(annotations["artifacthub.io/images"])
    assert image["image"] == f"ghcr.io/example/grpc-services:{meta['appVersion']}"
    changes = yaml.safe_load(annotations["artifacthub.io/changes"])
    assert {c["kind"] for c in changes} <= {"added", "changed", "deprecated", "removed", "fixed", "security"}


def test_the_kubernetes_version_of_the_cluster_test_is_within_kube_version():
    """kubeVersion claims what is proven: its floor is the oldest API schema
    the chart tests check, and the live cluster test's version is inside it."""
    from chart_helpers import REPO
    with helm_python.Chart.load(CHART) as chart:
        kube_version = chart.metadata["kubeVersion"]
    assert kube_version == ">=1.27.0-0"
    live = (REPO / "tests" / "k8s" / "tools" / "K8S_VERSION").read_text().strip()
    major, minor, _ = (int(x) for x in live.lstrip("v").split("."))
    assert (major, minor) >= (1, 27), live
    report = helm_python.lint(CHART, {}, strict=True, kube_version=live)
    assert report["errors"] == [] and report["messages"] == []
