"""Deployments, Services and availability objects as a user would rely on them."""

import pytest

from chart_helpers import pod_labels, render, seconds, selects

COMPONENTS = ("service1", "service2")
EXPECTED_PORTS = {
    "service1": {"http": 8080, "grpc": 50051, "admin": 9080},
    "service2": {"http": 8081, "admin": 9081},
}


def ports(container) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_service_runs_its_binary_from_the_one_image_on_its_ports(default, component):
    container = default.container(component)
    assert container["image"] == "ghcr.io/example/grpc-services:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == [f"/usr/local/bin/{component}"]
    assert ports(container) == EXPECTED_PORTS[component]
    env = default.config(component)
    assert env["PORT"] == str(EXPECTED_PORTS[component]["http"])
    assert env["ADMIN_PORT"] == str(EXPECTED_PORTS[component]["admin"])
    assert env["BIND_ADDR"] == "0.0.0.0"
    assert (env["LOG_FORMAT"], env["RUST_LOG"]) == ("json", "info")
    assert env["OTEL_SERVICE_NAME"] == component
    if component == "service1":
        assert env["GRPC_PORT"] == "50051"
        assert (env["MAX_CONNECTION_AGE"], env["MAX_CONNECTION_AGE_GRACE"]) == ("300s", "30s")
    else:
        assert env["SERVICE1_TIMEOUT"] == "10s"


def test_image_tag_and_ports_follow_values():
    rendered = render({"image": {"repository": "registry.local/gs", "tag": "1.2.3"},
                       "service1": {"ports": {"grpc": 6000, "admin": 6001}}})
    assert rendered.container("service1")["image"] == "registry.local/gs:1.2.3"
    assert rendered.config("service1")["GRPC_PORT"] == "6000"
    assert rendered.config("service2")["SERVICE1_CHANNEL"].endswith(":6000")
    assert rendered.container("service1")["readinessProbe"]["grpc"]["port"] == 6001
    assert rendered.get("Service", "hello-service1-grpc")["spec"]["ports"][0]["port"] == 6000


def test_default_replicas_are_three_and_two(default):
    assert default.deployment("service1")["spec"]["replicas"] == 3
    assert default.deployment("service2")["spec"]["replicas"] == 2


@pytest.mark.parametrize("component", COMPONENTS)
def test_probes_are_native_grpc_checks_on_the_admin_port(default, component):
    container = default.container(component)
    admin = ports(container)["admin"]
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[kind]
        assert probe["grpc"] == {"port": admin}, kind
        assert not {"httpGet", "tcpSocket", "exec"} & set(probe), kind
    assert admin != ports(container).get("grpc")


def test_there_is_no_prestop_hook_the_app_drains_itself(default):
    for component in COMPONENTS:
        assert "lifecycle" not in default.container(component)


@pytest.mark.parametrize("values", [
    {},
    {"drainDelaySeconds": 15, "shutdownGraceSeconds": 45},
    {"drainDelaySeconds": 0, "shutdownGraceSeconds": 1, "terminationGraceMarginSeconds": 1},
], ids=["defaults", "longer", "shortest"])
def test_termination_grace_outlasts_drain_plus_shutdown_grace(values):
    rendered = render(values)
    for component in COMPONENTS:
        env = rendered.config(component)
        drain, grace = seconds(env["DRAIN_DELAY"]), seconds(env["SHUTDOWN_GRACE"])
        assert drain == values.get("drainDelaySeconds", 10)
        assert grace == values.get("shutdownGraceSeconds", 20)
        period = rendered.deployment(component)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert period > drain + grace


def test_the_drain_delay_outlasts_service2_s_discovery_lag_with_margin(default):
    """service2 learns of a pod's leaving, and of its successor, at its next DNS
    lookup after Kubernetes updates the EndpointSlice; a replica must keep
    serving past that. The update takes seconds on a busy cluster, so the
    margin is a whole second interval."""
    resolve = seconds(default.config("service2").get("SERVICE1_RESOLVE_INTERVAL", "5s"))
    for component in COMPONENTS:
        assert seconds(default.config(component)["DRAIN_DELAY"]) >= 2 * resolve


def test_readiness_fails_within_the_drain_delay(default):
    """Draining reports NOT_SERVING; the kubelet should notice before the pod stops accepting."""
    drain = seconds(default.config("service1")["DRAIN_DELAY"])
    for component in COMPONENTS:
        probe = default.container(component)["readinessProbe"]
        assert probe["periodSeconds"] * probe["failureThreshold"] <= drain


def test_every_pod_and_container_is_hardened(default):
    specs = default.pod_specs()
    assert sorted(label for label, _ in specs) == [
        "Deployment/hello-service1", "Deployment/hello-service2", "Pod/hello-test-say-hello"]
    for label, spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True, label
        assert (psc["runAsUser"], psc["runAsGroup"], psc["fsGroup"]) == (65532, 65532, 65532), label
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, label
        assert spec["automountServiceAccountToken"] is False, label
        for container in spec["containers"] + spec.get("initContainers", []):
            csc = container["securityContext"]
            assert csc["allowPrivilegeEscalation"] is False, label
            assert csc["readOnlyRootFilesystem"] is True, label
            assert csc["capabilities"]["drop"] == ["ALL"], label
            assert "add" not in csc["capabilities"], label
            assert not csc.get("privileged"), label


def test_every_container_has_requests_and_a_memory_limit_but_no_cpu_limit(default):
    for label, spec in default.pod_specs():
        for container in spec["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), label
            assert "memory" in resources["limits"], label
            assert "cpu" not in resources["limits"], label
    assert default.container("service1")["resources"] == {
        "requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}


def test_service_accounts_do_not_mount_api_tokens(default):
    for component in COMPONENTS:
        spec = default.deployment(component)["spec"]["template"]["spec"]
        sa = default.get("ServiceAccount", spec["serviceAccountName"])
        assert sa["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == f"hello-{component}"


def test_pods_spread_over_zones_and_nodes_without_blocking_scheduling(default):
    for component in COMPONENTS:
        constraints = default.deployment(component)["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert sorted(c["topologyKey"] for c in constraints) == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        for c in constraints:
            assert c["whenUnsatisfiable"] == "ScheduleAnyway"
            assert selects(c["labelSelector"], pod_labels(default, component))
            other = "service2" if component == "service1" else "service1"
            assert not selects(c["labelSelector"], pod_labels(default, other))
    off = render({"topologySpread": {"enabled": False}})
    assert "topologySpreadConstraints" not in off.deployment("service1")["spec"]["template"]["spec"]


def test_each_service_has_a_disruption_budget_of_one_pod(default):
    pdbs = default.all("PodDisruptionBudget")
    assert len(pdbs) == 2
    for component in COMPONENTS:
        pdb = default.get("PodDisruptionBudget", f"hello-{component}")
        assert pdb["spec"]["maxUnavailable"] == 1
        assert selects(pdb["spec"]["selector"], pod_labels(default, component))
        other = "service2" if component == "service1" else "service1"
        assert not selects(pdb["spec"]["selector"], pod_labels(default, other))
    assert render({"service2": {"pdb": {"enabled": False}}}).find("PodDisruptionBudget", "hello-service2") is None


def test_autoscaling_is_off_by_default_and_takes_over_replicas_when_on(default):
    assert default.all("HorizontalPodAutoscaler") == []
    rendered = render({"service1": {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 9}}})
    (hpa,) = rendered.all("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello-service1"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (4, 9)
    assert "replicas" not in rendered.deployment("service1")["spec"]
    assert rendered.deployment("service2")["spec"]["replicas"] == 2


def test_rolling_updates_never_go_below_the_desired_count(default):
    for component in COMPONENTS:
        strategy = default.deployment(component)["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_service2_reaches_every_service1_pod_through_the_headless_service(default):
    channel = default.config("service2")["SERVICE1_CHANNEL"]
    assert channel == "dns:///hello-service1-grpc.demo.svc.cluster.local:50051"
    host = channel.removeprefix("dns:///").rsplit(":", 1)[0]
    svc = default.get("Service", host.split(".")[0])
    assert host == f"{svc['metadata']['name']}.demo.svc.cluster.local"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is False
    assert svc["spec"]["ports"] == [
        {"name": "tls-grpc", "appProtocol": "tls", "port": 50051, "targetPort": "grpc", "protocol": "TCP"}]
    assert selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(default, "service1"))
    assert not selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(default, "service2"))


def test_channel_follows_namespace_and_cluster_domain():
    rendered = render({"clusterDomain": "corp.internal"}, namespace="prod")
    assert rendered.config("service2")["SERVICE1_CHANNEL"] == "dns:///hello-service1-grpc.prod.svc.corp.internal:50051"


@pytest.mark.parametrize("component", COMPONENTS)
def test_rest_services_forward_port_80_to_the_http_port(default, component):
    svc = default.get("Service", f"hello-{component}")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(default, component))


def test_otel_endpoint_is_set_only_when_given(default):
    for component in COMPONENTS:
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in default.config(component)
    rendered = render({"otel": {"endpoint": "http://collector.observability:4317"}})
    for component in COMPONENTS:
        assert rendered.config(component)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.observability:4317"


def test_extra_env_reaches_only_its_service_and_wins():
    rendered = render({"service2": {"extraEnv": [{"name": "RUST_LOG", "value": "debug"}]}})
    assert rendered.config("service2")["RUST_LOG"] == "debug"
    assert rendered.config("service1")["RUST_LOG"] == "info"


def test_fullname_override_renames_everything_consistently():
    rendered = render({"fullnameOverride": "greeter"})
    assert rendered.get("Service", "greeter-service1-grpc")
    assert rendered.config("service2")["TLS_SERVER_NAME"] == "greeter-service1-grpc"
    assert "spiffe://cluster.local/ns/demo/sa/greeter-service2" in rendered.config("service1")["TLS_ALLOWED_CLIENTS"]
    assert not [o for o in rendered.objects if o["metadata"]["name"].startswith("hello")]


def test_long_release_names_still_make_valid_service_names():
    rendered = render(name="a" * 53)
    for svc in rendered.all("Service"):
        assert len(svc["metadata"]["name"]) <= 63


def test_the_grpc_port_is_declared_as_tls_so_meshes_pass_it_through(default):
    """service1 terminates TLS itself: a sidecar must not parse the bytes as plaintext HTTP/2.

    Istio picks the protocol from appProtocol, else from the port name's prefix
    before the first dash; both say tls. Linkerd detects the TLS ClientHello
    and proxies the connection as opaque TCP.
    """
    (port,) = default.get("Service", "hello-service1-grpc")["spec"]["ports"]
    assert port["appProtocol"] == "tls"
    assert port["name"].split("-")[0] == "tls"
    assert len(port["name"]) <= 15
    # Every Service port that carries plaintext keeps a plaintext name.
    for name in ("hello-service1", "hello-service2"):
        for p in default.get("Service", name)["spec"]["ports"]:
            assert p["name"] == "http" and "appProtocol" not in p
