"""service2's settings for slow and hung service1 replicas, from values to
its environment (the README's "Slow and hung replicas")."""

import helm_python
import pytest
from chart_helpers import render


def upstream(**changes):
    return {"service2": {"upstream": changes}}


def test_defaults_reach_service2_as_the_binarys_own_defaults(default):
    config = default.config("service2")

    assert {k: config[k] for k in config if k.startswith(("SERVICE1_ATTEMPT", "SERVICE1_KEEPALIVE", "SERVICE1_EJECT"))} == {
        "SERVICE1_ATTEMPT_TIMEOUT": "1000ms",
        "SERVICE1_KEEPALIVE_INTERVAL": "1000ms",
        "SERVICE1_KEEPALIVE_TIMEOUT": "2000ms",
        "SERVICE1_EJECT_AFTER_FAILURES": "5",
        "SERVICE1_EJECT_TIME": "10s",
        "SERVICE1_EJECT_TIME_MAX": "300s",
        "SERVICE1_EJECT_MAX_PERCENT": "50",
    }
    assert not any(k.startswith("SERVICE1_") for k in default.config("service1"))


def test_changed_values_reach_service2_and_roll_only_its_pods(default):
    changed = render(
        upstream(
            attemptTimeoutMilliseconds=250,
            keepaliveTimeoutMilliseconds=500,
            ejection={"consecutiveFailures": 0, "baseSeconds": 1, "maxSeconds": 60, "maxPercent": 100},
        )
    )

    config = changed.config("service2")
    assert (config["SERVICE1_ATTEMPT_TIMEOUT"], config["SERVICE1_KEEPALIVE_TIMEOUT"]) == ("250ms", "500ms")
    assert (config["SERVICE1_EJECT_AFTER_FAILURES"], config["SERVICE1_EJECT_TIME"]) == ("0", "1s")
    assert (config["SERVICE1_EJECT_TIME_MAX"], config["SERVICE1_EJECT_MAX_PERCENT"]) == ("60s", "100")
    assert changed.config("service1") == default.config("service1")


BAD = {
    "an attempt timeout of 0": (upstream(attemptTimeoutMilliseconds=0), "/service2/upstream/attemptTimeoutMilliseconds"),
    "a keepalive interval as a string": (
        upstream(keepaliveIntervalMilliseconds="1s"), "/service2/upstream/keepaliveIntervalMilliseconds"),
    "more than 100 %": (upstream(ejection={"maxPercent": 101}), "/service2/upstream/ejection/maxPercent"),
    "negative failures": (upstream(ejection={"consecutiveFailures": -1}), "/service2/upstream/ejection/consecutiveFailures"),
    "a misspelt key": (upstream(attemptTimeout=1000), "attemptTimeout"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_schema_refuses_what_service2_would_refuse(case):
    values, where = BAD[case]
    with pytest.raises(helm_python.HelmValuesError) as info:
        render(values)
    assert where in str(info.value)


def test_an_ejection_longer_at_first_than_at_most_is_refused_in_one_line():
    with pytest.raises(helm_python.HelmRenderError, match=r"baseSeconds must not exceed .*maxSeconds"):
        render(upstream(ejection={"baseSeconds": 600, "maxSeconds": 300}))


def test_service1_s_client_chain_cap_reaches_it_and_the_schema_bounds_it(default):
    assert default.config("service1")["TLS_MAX_CLIENT_CHAIN"] == "4"
    assert render({"service1": {"maxClientChain": 2}}).config("service1")["TLS_MAX_CLIENT_CHAIN"] == "2"
    with pytest.raises(helm_python.HelmValuesError) as info:
        render({"service1": {"maxClientChain": 17}})
    assert "/service1/maxClientChain" in str(info.value)
