"""The chart's monitoring objects, live on `make test-cluster`'s cluster
(tests/k8s/monitoring.sh runs this inside the cluster's network namespace).

    cluster.py config PODMONITOR.json PROMETHEUSRULE.json PODS.json OUTDIR
        writes OUTDIR/prometheus.yml and OUTDIR/rules.json: the scrape job
        and rule file prometheus-operator would make from the objects the
        chart installed (as `kubectl get -o json` gives them); and
        OUTDIR/targets.json, what Kubernetes pod discovery would find in
        the namespace's pods (PODS.json, a `kubectl get pods -o json`).

Debian's Prometheus is built without Kubernetes discovery
(`kubernetes_sd_configs` is "not found in type config.ScrapeConfig"), so a
file lists every container port of every pod with the `__meta_kubernetes_*`
labels that discovery gives it, and Prometheus applies the PodMonitor's
relabelling to them: which pods and port it scrapes is still decided by the
PodMonitor's selector, in Prometheus.
    cluster.py check --prometheus URL --namespace NS --pods "POD ..."
                     --dashboard CONFIGMAP.json --rules N --say-hello URL
        waits until Prometheus scrapes every pod named, sends say-hello
        calls in two phases (so the say-hello series exist, then move), and
        checks that every query of the dashboard gives a number and that
        the N alert rules evaluate without error.

Python's standard library only; every wait is bounded.
"""

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from loadtools.services import http_get  # noqa: E402
from tests.prometheus.promql import Checks, PrometheusAPI, check_dashboard  # noqa: E402

SAY_HELLO = 'http_server_requests_total{namespace="%s",route="/api/v1/say-hello"}'
# How long Prometheus may take to find and scrape every pod.
TARGETS_TIMEOUT_S = 90


def sanitized(label):
    """A Kubernetes label name as Prometheus's discovery meta label spells it."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def discovered(pods):
    """What Prometheus's Kubernetes discovery (role pod) finds: a target per
    declared container port, with its meta labels (file_sd's format)."""
    targets = []
    for pod in pods["items"]:
        meta, status = pod["metadata"], pod.get("status", {})
        if not status.get("podIP"):
            continue
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        labels = {
            "__meta_kubernetes_namespace": meta["namespace"],
            "__meta_kubernetes_pod_name": meta["name"],
            "__meta_kubernetes_pod_ip": status["podIP"],
            "__meta_kubernetes_pod_phase": status.get("phase", ""),
            "__meta_kubernetes_pod_ready": str(ready).lower(),
        }
        for key, value in meta.get("labels", {}).items():
            labels[f"__meta_kubernetes_pod_label_{sanitized(key)}"] = value
            labels[f"__meta_kubernetes_pod_labelpresent_{sanitized(key)}"] = "true"
        for container in pod["spec"]["containers"]:
            for port in container.get("ports", []):
                targets.append({"targets": [f"{status['podIP']}:{port['containerPort']}"], "labels": {
                    **labels,
                    "__meta_kubernetes_pod_container_name": container["name"],
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                }})
    return targets


def scrape_config(monitor, targets_file):
    """The scrape job of one PodMonitor with one endpoint, as
    prometheus-operator generates it: pods of the monitor's namespace whose
    labels match, the named container port, the operator's target labels."""
    meta, spec = monitor["metadata"], monitor["spec"]
    (endpoint,) = spec["podMetricsEndpoints"]
    keep = [{"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"}]
    for label, value in spec["selector"].get("matchLabels", {}).items():
        keep.append({"action": "keep",
                     "source_labels": [f"__meta_kubernetes_pod_label_{sanitized(label)}",
                                       f"__meta_kubernetes_pod_labelpresent_{sanitized(label)}"],
                     "regex": f"({re.escape(value)});true"})
    keep.append({"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                 "regex": re.escape(endpoint["port"])})
    targets = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]
    job = {
        "job_name": f"podMonitor/{meta['namespace']}/{meta['name']}/0",
        "metrics_path": endpoint.get("path", "/metrics"),
        # The operator writes kubernetes_sd_configs (role pod, the monitor's
        # namespace); see the module's docstring for why a file stands in.
        "file_sd_configs": [{"files": [str(targets_file)]}],
        "relabel_configs": keep + targets,
    }
    if endpoint.get("interval"):
        job["scrape_interval"] = endpoint["interval"]
    return job


def config(args):
    monitor = json.loads(Path(args.podmonitor).read_text())
    rule = json.loads(Path(args.prometheusrule).read_text())
    out = Path(args.outdir)
    targets = out / "targets.json"
    targets.write_text(json.dumps(discovered(json.loads(Path(args.pods).read_text())), indent=2))
    rules = out / "rules.json"
    rules.write_text(json.dumps(rule["spec"], indent=2))
    # JSON is YAML: Prometheus reads both files as they are.
    (out / "prometheus.yml").write_text(json.dumps({
        "global": {"evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [scrape_config(monitor, targets)],
    }, indent=2))
    return 0


def say_hello(url, calls):
    """`calls` GETs of `url`; the statuses other than 200 (or the errors)."""
    failed = []
    for _ in range(calls):
        try:
            status = http_get(url, timeout=10)[0]
        except OSError as e:
            status = str(e)
        if status != 200:
            failed.append(status)
    return failed


def check(args):
    p = PrometheusAPI(args.prometheus)
    c = Checks(p, print, detail=False)
    ns = args.namespace
    pods = sorted(args.pods.split())

    p.wait_for(f'count(up{{namespace="{ns}"}} == 1)', len(pods), "every pod scraped", TARGETS_TIMEOUT_S)
    scraped = sorted(m["pod"] for m, _ in p.query(f'up{{namespace="{ns}"}} == 1'))
    c.verdict(f"the PodMonitor's scrape: every pod of both services up ({len(pods)})",
              True if scraped == pods else f"scraped {scraped}, expected {pods}")

    # The series of a fresh service2 pod begin with its first call; rates
    # need them stored, then moved.
    for phase, calls in (("one", 10), ("two", 20)):
        before = p.value(f"sum({SAY_HELLO % ns})") or 0
        failed = say_hello(args.say_hello, calls)
        c.verdict(f"say-hello, phase {phase}: {calls} calls answered 200", True if not failed else f"got {failed}")
        p.wait_for(f"sum({SAY_HELLO % ns})", lambda v, want=before + calls: v is not None and v >= want,
                   f"phase {phase}'s calls scraped")
    p.pin()

    configmap = json.loads(Path(args.dashboard).read_text())
    (dashboard,) = [json.loads(text) for name, text in configmap["data"].items() if name.endswith(".json")]
    check_dashboard(c, dashboard, ns)
    c.check("dashboard: its namespace variable offers this namespace",
            "count by (namespace) (service1_endpoints_ready)",
            lambda r: True if any(m.get("namespace") == ns for m, _ in r) else f"no namespace {ns}")

    loaded = p.wait_for_evaluated_rules(args.rules)
    broken = [f"{r['name']}: {r['health']} {r.get('lastError', '')}" for _, r in loaded if r["health"] != "ok"]
    c.verdict(f"the PrometheusRule: all {args.rules} alerts evaluate without error",
              True if not broken else "; ".join(broken))
    return 1 if c.failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cfg = sub.add_parser("config")
    for name in ("podmonitor", "prometheusrule", "pods", "outdir"):
        cfg.add_argument(name)
    chk = sub.add_parser("check")
    for name in ("--prometheus", "--namespace", "--pods", "--dashboard", "--say-hello"):
        chk.add_argument(name, required=True)
    chk.add_argument("--rules", type=int, required=True)
    args = parser.parse_args()
    try:
        return config(args) if args.command == "config" else check(args)
    except AssertionError as e:
        print(f"FAIL  {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
