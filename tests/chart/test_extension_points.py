"""What a platform team adds without forking the chart (issue 22): pod spec
extension points, Service settings, extraObjects, image registries, HPA and
VPA, the helm test pod's scheduling, the Grafana dashboard per release,
security context schemas and OpenShift."""

import json

import helm_python
import pytest

from chart_helpers import render

COMPONENTS = ("service1", "service2")


def pod_spec(rendered, component):
    return rendered.deployment(component)["spec"]["template"]["spec"]


# --- pod spec --------------------------------------------------------------------

@pytest.mark.parametrize("component", COMPONENTS)
def test_extra_volumes_mounts_init_containers_and_sidecars_reach_the_pod(component):
    rendered = render({component: {
        "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
        "sidecars": [{"name": "proxy", "image": "envoy", "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]}],
        "extraEnvFrom": [{"secretRef": {"name": "my-env"}}],
    }})
    spec = pod_spec(rendered, component)
    assert [c["name"] for c in spec["containers"]] == [component, "proxy"]
    assert [c["name"] for c in spec["initContainers"]] == ["init"]
    assert {"name": "scratch", "emptyDir": {}} in spec["volumes"]
    assert spec["volumes"][0]["name"] == "tls"  # the chart's own volumes stay
    main = spec["containers"][0]
    assert {"name": "scratch", "mountPath": "/scratch"} in main["volumeMounts"]
    assert main["volumeMounts"][0]["mountPath"] == "/etc/tls"
    assert main["envFrom"][0]["configMapRef"]["name"] == f"hello-{component}-config"
    assert main["envFrom"][1] == {"secretRef": {"name": "my-env"}}
    other = "service2" if component == "service1" else "service1"
    assert "initContainers" not in pod_spec(rendered, other)
    assert len(pod_spec(rendered, other)["containers"]) == 1


def test_sidecars_and_volumes_are_rendered_with_tpl():
    rendered = render({"service2": {
        "sidecars": [{"name": "helper", "image": '{{ include "grpc-services.image" . }}'}],
        "extraVolumes": [{"name": "extra", "configMap": {"name": '{{ include "grpc-services.fullname" . }}-extra'}}],
    }})
    spec = pod_spec(rendered, "service2")
    assert spec["containers"][1]["image"] == spec["containers"][0]["image"]
    assert {"name": "extra", "configMap": {"name": "hello-extra"}} in spec["volumes"]


def test_lifecycle_dns_runtime_class_and_rollout_settings_are_passed_through():
    hook = {"preStop": {"sleep": {"seconds": 2}}}
    dns = {"options": [{"name": "ndots", "value": "2"}]}
    rendered = render({"service1": {"lifecycle": hook, "dnsConfig": dns, "runtimeClassName": "gvisor",
                                    "revisionHistoryLimit": 3, "minReadySeconds": 5,
                                    "terminationGracePeriodSeconds": 60}})
    deployment = rendered.deployment("service1")
    spec = deployment["spec"]["template"]["spec"]
    assert rendered.container("service1")["lifecycle"] == hook
    assert spec["dnsConfig"] == dns
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["terminationGracePeriodSeconds"] == 60
    assert (deployment["spec"]["revisionHistoryLimit"], deployment["spec"]["minReadySeconds"]) == (3, 5)
    defaults = rendered.deployment("service2")
    assert defaults["spec"]["revisionHistoryLimit"] == 10 and "minReadySeconds" not in defaults["spec"]
    assert defaults["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 35


def test_termination_grace_may_be_lengthened_but_not_shortened_below_the_drain():
    with pytest.raises(helm_python.HelmRenderError, match="service2.terminationGracePeriodSeconds"):
        render({"service2": {"terminationGracePeriodSeconds": 29}})


def test_pod_annotations_reach_the_pod_template_beside_the_config_checksum():
    rendered = render({"service2": {"podAnnotations": {"prometheus.io/scrape": "false"}}})
    annotations = rendered.deployment("service2")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "false" and "checksum/config" in annotations


# --- Services --------------------------------------------------------------------

def test_service2_can_be_a_node_port_with_a_fixed_port_and_local_traffic_policy():
    rendered = render({"service2": {"service": {"type": "NodePort", "nodePort": 30081,
                                                "externalTrafficPolicy": "Local",
                                                "annotations": {"a": "b"}, "ipFamilyPolicy": "PreferDualStack"}}})
    svc = rendered.get("Service", "hello-service2")
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"][0]["nodePort"] == 30081
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    assert svc["spec"]["ipFamilyPolicy"] == "PreferDualStack"
    assert svc["metadata"]["annotations"] == {"a": "b"}
    assert rendered.get("Service", "hello-service1")["spec"]["type"] == "ClusterIP"


def test_a_load_balancer_takes_source_ranges():
    rendered = render({"service1": {"service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}}})
    assert rendered.get("Service", "hello-service1")["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]


@pytest.mark.parametrize("service, where", [
    ({"externalTrafficPolicy": "Local"}, "externalTrafficPolicy"),
    ({"nodePort": 30000}, "nodePort"),
    ({"type": "NodePort", "loadBalancerSourceRanges": ["10.0.0.0/8"]}, "loadBalancerSourceRanges"),
])
def test_service_settings_the_api_server_refuses_for_the_type_are_refused(service, where):
    with pytest.raises(helm_python.HelmValuesError, match=where) as info:
        render({"service2": {"service": service}})
    # refused for the combination with the type, not as an unknown key
    assert "additional properties" not in str(info.value)


def test_the_headless_grpc_service_takes_annotations_and_an_ip_family_policy():
    rendered = render({"service1": {"grpcService": {"annotations": {"x": "y"}, "ipFamilyPolicy": "SingleStack"}}})
    svc = rendered.get("Service", "hello-service1-grpc")
    assert svc["metadata"]["annotations"] == {"x": "y"} and svc["spec"]["ipFamilyPolicy"] == "SingleStack"


# --- extraObjects ------------------------------------------------------------------

def test_extra_objects_are_rendered_with_tpl_from_maps_and_strings():
    rendered = render({"extraObjects": [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": '{{ include "grpc-services.fullname" . }}-extra', "namespace": "{{ .Release.Namespace }}"},
         "data": {"release": "{{ .Release.Name }}"}},
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-extra\nstringData:\n  a: b\n",
    ]})
    cm = rendered.get("ConfigMap", "hello-extra")
    assert cm["metadata"]["namespace"] == "demo" and cm["data"] == {"release": "hello"}
    assert rendered.get("Secret", "hello-extra")["stringData"] == {"a": "b"}


def test_no_extra_objects_by_default(default):
    assert "grpc-services/templates/extra-objects.yaml" not in {p for p, t in default.sources.items() if t.strip()}


# --- images --------------------------------------------------------------------------

@pytest.mark.parametrize("values, image", [
    ({"global": {"imageRegistry": "mirror.local:5000"}}, "mirror.local:5000/example/grpc-services:0.1.0"),
    ({"image": {"registry": "registry.corp"}}, "registry.corp/example/grpc-services:0.1.0"),
    ({"global": {"imageRegistry": "mirror.local"}, "image": {"registry": "registry.corp"}},
     "mirror.local/example/grpc-services:0.1.0"),
    ({"image": {"registry": "registry.corp", "repository": "team/gs"}}, "registry.corp/team/gs:0.1.0"),
    ({"image": {"registry": "registry.corp", "repository": "gs"}}, "registry.corp/gs:0.1.0"),
], ids=["global", "per image", "global wins", "repository without registry", "one component"])
def test_a_registry_replaces_the_one_in_the_repository_for_every_pod(values, image):
    rendered = render(values)
    assert {c["image"] for _, spec in rendered.pod_specs() for c in spec["containers"]} == {image}


def test_global_and_chart_pull_secrets_are_both_used_without_repeats():
    rendered = render({"global": {"imagePullSecrets": ["mirror", {"name": "shared"}]},
                       "imagePullSecrets": [{"name": "shared"}, {"name": "own"}]})
    for label, spec in rendered.pod_specs():
        assert spec["imagePullSecrets"] == [{"name": "mirror"}, {"name": "shared"}, {"name": "own"}], label


def test_no_pull_secrets_by_default(default):
    for _, spec in default.pod_specs():
        assert "imagePullSecrets" not in spec


# --- HPA and VPA -----------------------------------------------------------------------

def test_hpa_takes_memory_custom_metrics_and_behavior():
    custom = {"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
                                       "target": {"type": "AverageValue", "averageValue": "100"}}}
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 600}}
    rendered = render({"service2": {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80,
                                                    "metrics": [custom], "behavior": behavior}}})
    hpa = rendered.get("HorizontalPodAutoscaler", "hello-service2")
    names = [m.get("resource", {}).get("name") for m in hpa["spec"]["metrics"]]
    assert names == ["cpu", "memory", None]
    assert hpa["spec"]["metrics"][2] == custom
    assert hpa["spec"]["behavior"] == behavior


def test_hpa_on_custom_metrics_only():
    custom = {"type": "External", "external": {"metric": {"name": "queue_depth"},
                                               "target": {"type": "Value", "value": "30"}}}
    rendered = render({"service1": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None,
                                                    "metrics": [custom]}}})
    assert rendered.get("HorizontalPodAutoscaler", "hello-service1")["spec"]["metrics"] == [custom]


@pytest.mark.parametrize("mode", ["Off", "Initial", "Auto"])
def test_a_vertical_pod_autoscaler_for_the_service_container(mode):
    rendered = render({"service1": {"verticalPodAutoscaler": {"enabled": True, "updateMode": mode,
                                                              "minAllowed": {"cpu": "25m"}, "maxAllowed": {"memory": "256Mi"}}}})
    (vpa,) = rendered.all("VerticalPodAutoscaler")
    assert vpa["apiVersion"] == "autoscaling.k8s.io/v1"
    assert vpa["spec"]["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello-service1"}
    assert vpa["spec"]["updatePolicy"]["updateMode"] == mode
    (policy,) = vpa["spec"]["resourcePolicy"]["containerPolicies"]
    assert policy == {"containerName": "service1", "controlledResources": ["cpu", "memory"],
                      "minAllowed": {"cpu": "25m"}, "maxAllowed": {"memory": "256Mi"}}


def test_no_vpa_by_default(default):
    assert default.all("VerticalPodAutoscaler") == []


def test_a_vpa_that_acts_is_refused_beside_an_hpa_on_cpu():
    with pytest.raises(helm_python.HelmRenderError, match="verticalPodAutoscaler"):
        render({"service2": {"autoscaling": {"enabled": True},
                             "verticalPodAutoscaler": {"enabled": True, "updateMode": "Auto"}}})
    # recommendations only are fine
    assert render({"service2": {"autoscaling": {"enabled": True},
                                "verticalPodAutoscaler": {"enabled": True}}}).all("VerticalPodAutoscaler")


# --- the helm test pod -------------------------------------------------------------------

def test_the_helm_test_pod_can_be_scheduled_on_a_tainted_pool():
    toleration = {"key": "pool", "operator": "Equal", "value": "tests", "effect": "NoSchedule"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["tests"]}]}]}}}
    rendered = render({"helmTest": {"nodeSelector": {"pool": "tests"}, "tolerations": [toleration],
                                    "affinity": affinity, "priorityClassName": "low",
                                    "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "16Mi"}}}})
    (pod,) = rendered.all("Pod")
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"pool": "tests"}
    assert spec["tolerations"] == [toleration]
    assert spec["affinity"] == affinity
    assert spec["priorityClassName"] == "low"
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "5m", "memory": "8Mi"}


# --- the Grafana dashboard ------------------------------------------------------------------

def dashboard(values, **kw):
    rendered = render({"monitoring": {"grafanaDashboard": {"enabled": True, **values}}}, **kw)
    return json.loads(rendered.get("ConfigMap", f"{kw.get('name', 'hello')}-dashboard")["data"]["grpc-services.json"])


def test_two_releases_get_dashboards_with_their_own_uid_and_title():
    a, b, c = dashboard({}), dashboard({}, name="other"), dashboard({}, namespace="prod")
    assert len({a["uid"], b["uid"], c["uid"]}) == 3
    assert all(len(d["uid"]) <= 40 for d in (a, b, c))
    assert a["title"] == "grpc-services (demo/hello)"
    assert b["title"] == "grpc-services (demo/other)"
    assert dashboard({"uid": "mine", "title": "Mine"})["uid"] == "mine"


def test_the_dashboard_has_a_job_variable_set_to_this_release_and_every_query_uses_it():
    d = dashboard({})
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["job"]["current"]["value"] == ["demo/hello"]
    assert variables["namespace"]["current"]["value"] == ["demo"]
    for panel in d["panels"]:
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"] and 'namespace=~"$namespace"' in target["expr"]


# --- security contexts and OpenShift ----------------------------------------------------------

@pytest.mark.parametrize("values, where", [
    ({"podSecurityContext": {"runAsUser": "nobody"}}, "/podSecurityContext/runAsUser"),
    ({"podSecurityContext": {"runAsNonroot": True}}, "runAsNonroot"),
    ({"containerSecurityContext": {"capabilities": {"dropp": ["ALL"]}}}, "dropp"),
    ({"containerSecurityContext": {"readOnlyRootFilesystem": "yes"}}, "/containerSecurityContext/readOnlyRootFilesystem"),
])
def test_security_contexts_are_checked_against_the_kubernetes_definitions(values, where):
    with pytest.raises(helm_python.HelmValuesError, match=where):
        render(values)


def test_the_schemas_copy_of_the_kubernetes_definitions_is_current():
    import k8s_definitions
    schema = json.loads((k8s_definitions.CHART / "values.schema.json").read_text())
    embedded = {k: v for k, v in schema["definitions"].items() if k.startswith("k8s.")}
    assert embedded == k8s_definitions.definitions(), "run: .venv/bin/python tests/chart/k8s_definitions.py"


def fixed_ids(spec):
    found = {k for k in ("runAsUser", "runAsGroup", "fsGroup") if k in spec["securityContext"]}
    for c in spec["containers"]:
        found |= {k for k in ("runAsUser", "runAsGroup") if k in c.get("securityContext", {})}
    return found


@pytest.mark.parametrize("mode, api_versions, dropped", [
    ("auto", [], False),
    ("auto", ["security.openshift.io/v1"], True),
    ("force", [], True),
    ("disabled", ["security.openshift.io/v1"], False),
])
def test_openshift_adapt_security_context_drops_fixed_ids(mode, api_versions, dropped):
    values = {"global": {"compatibility": {"openshift": {"adaptSecurityContext": mode}}}}
    rendered = render_with_api_versions(values, api_versions)
    for label, spec in rendered.pod_specs():
        assert (fixed_ids(spec) == set()) is dropped, label
        assert spec["securityContext"]["runAsNonRoot"] is True, label
        assert spec["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}, label


def render_with_api_versions(values, api_versions):
    """render(), with extra API versions the cluster serves (as
    .Capabilities.APIVersions). helm_python has no switch for them, so
    "auto" on OpenShift is simulated through a test-only value."""
    if api_versions:
        values = {**values, "testApiVersions": api_versions}
    return render(values)
