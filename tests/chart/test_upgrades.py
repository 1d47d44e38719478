"""Upgrading a running release (issue 22, defect 5).

`lookup` returns nothing offline, so these tests hand the chart the
Deployments "already in the cluster" through testExistingDeployments, which
the chart consults only when `lookup` finds nothing (as
tls.testExistingSecrets does for the generated certificates).
"""

import helm_python
import pytest

from chart_helpers import render

AUTOSCALED = {"service1": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 10}}}


def live_deployment(component, replicas, name="grpc-services"):
    return {f"hello-{component}": {"spec": {
        "replicas": replicas,
        "selector": {"matchLabels": {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "hello",
                                     "app.kubernetes.io/component": component}}}}}


def test_a_fresh_install_with_autoscaling_leaves_replicas_to_the_hpa():
    rendered = render(AUTOSCALED)
    assert "replicas" not in rendered.deployment("service1")["spec"]


def test_turning_on_autoscaling_keeps_the_live_replica_count_instead_of_falling_to_one():
    """Kubernetes' advice when moving a Deployment to an HPA: do not let the
    apply drop spec.replicas (it would default to 1). The chart writes the
    count the Deployment has now; from then on the HPA owns it."""
    rendered = render({**AUTOSCALED, "testExistingDeployments": live_deployment("service1", 7)}, is_upgrade=True)
    assert rendered.deployment("service1")["spec"]["replicas"] == 7


def test_the_live_count_is_only_used_for_the_autoscaled_service():
    rendered = render({**AUTOSCALED, "testExistingDeployments": {**live_deployment("service1", 7),
                                                                 **live_deployment("service2", 9)}},
                      is_upgrade=True)
    assert rendered.deployment("service2")["spec"]["replicas"] == 2


def test_changing_name_override_on_an_upgrade_is_refused_because_the_selector_is_immutable():
    with pytest.raises(helm_python.HelmRenderError, match="nameOverride"):
        render({"nameOverride": "greeter", "testExistingDeployments": live_deployment("service1", 3)},
               is_upgrade=True)


def test_an_upgrade_with_the_same_name_override_passes():
    values = {"nameOverride": "greeter", "testExistingDeployments": live_deployment("service1", 3, name="greeter")}
    assert render(values, is_upgrade=True).deployment("service1")["spec"]["replicas"] == 3
