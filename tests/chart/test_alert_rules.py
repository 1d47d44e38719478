"""The PrometheusRule's alerts, on synthetic series, with `promtool test rules`.

Each tests/chart/rules/*.test.yaml is run against the rules the chart renders
(release hello, namespace demo). promtool comes from Debian's `prometheus`
package: `make test-rules` installs it when missing and makes these tests
required (GRPC_SERVICES_REQUIRE_PROMTOOL=1); elsewhere they are skipped
without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chart_helpers import render

RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*.test.yaml"))
ENABLED = {"monitoring": {"prometheusRule": {"enabled": True}}}


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("GRPC_SERVICES_REQUIRE_PROMTOOL") == "1":
        pytest.fail("promtool not found (apt-get install prometheus)")
    pytest.skip("promtool not installed; make test-rules installs it")


def rendered_rules(values=ENABLED) -> dict:
    (rule,) = render(values).all("PrometheusRule")
    return rule


def write_rules(directory: Path, values=ENABLED) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rendered_rules(values)["spec"], sort_keys=False))
    return path


def test_no_prometheus_rule_unless_enabled(default):
    assert default.all("PrometheusRule") == []


def test_promtool_accepts_the_rendered_rules(tmp_path):
    result = subprocess.run([promtool(), "check", "rules", str(write_rules(tmp_path))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_alerts_fire_as_the_rule_tests_expect(tmp_path, case):
    tool = promtool()
    write_rules(tmp_path)
    shutil.copy(case, tmp_path / case.name)
    result = subprocess.run([tool, "test", "rules", case.name], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_rule_test():
    alerts = {r["alert"] for g in rendered_rules()["spec"]["groups"] for r in g["rules"] if "alert" in r}
    tested = set()
    for case in RULE_TESTS:
        for test in yaml.safe_load(case.read_text())["tests"]:
            tested |= {t["alertname"] for t in test.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert alerts - tested == set()


def test_alerts_follow_the_selector_and_thresholds():
    values = {"monitoring": {"prometheusRule": {
        "enabled": True, "selector": 'job="demo/hello"', "certificateExpiryWarningDays": 30,
        "labels": {"release": "kube-prometheus-stack"}}}}
    rule = rendered_rules(values)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all('{job="demo/hello"}' in e or '{job="demo/hello",' in e for e in exprs), exprs
    assert any(str(30 * 86400) in e for e in exprs)


def test_a_pod_monitor_scrapes_the_admin_port_of_every_pod_of_the_release():
    rendered = render({"monitoring": {"podMonitor": {"enabled": True, "labels": {"release": "kps"}}}})
    (monitor,) = rendered.all("PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "admin", "path": "/metrics"}]
    selector = monitor["spec"]["selector"]["matchLabels"]
    for component in ("service1", "service2"):
        pod = rendered.deployment(component)["spec"]["template"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        ports = [p["name"] for c in pod["spec"]["containers"] for p in c["ports"]]
        assert "admin" in ports


def test_no_pod_monitor_unless_enabled(default):
    assert default.all("PodMonitor") == []


def test_the_dashboard_is_a_configmap_for_grafanas_sidecar():
    import json

    rendered = render({"monitoring": {"grafanaDashboard": {"enabled": True, "folder": "Payments"}}})
    (config,) = [c for c in rendered.all("ConfigMap") if c["metadata"]["name"] == "hello-dashboard"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Payments"}
    dashboard = json.loads(config["data"]["grpc-services.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs and all('namespace=~"$namespace"' in e for e in exprs)
