"""Both services scraped by a real Prometheus, and the queries of stock gRPC
dashboards and alerts (go-grpc-prometheus names), of the chart's Grafana
dashboard and of the chart's alert rules answered from what it stored.
`make test-prometheus` runs this (scripts/test-prometheus.sh).

service1 and service2 run from target/debug on loopback, with mTLS and a
fresh development certificate set, and Prometheus (`prometheus` on PATH;
Debian's is 2.42) with a generated configuration, a throw-away storage
directory and a free loopback port. Each target carries the labels a
PodMonitor's scrape would give it (namespace, pod), so the chart's rules,
rendered with their default series selector, pick them. Every wait is a bounded poll of a
signal: /readyz, Prometheus's /-/ready, and its query API until the scrape
we need is stored.

The calls: say-hello five times, and once with a name longer than service1
takes (GRPC_MAX_MESSAGE_BYTES is cut to 64 here), so service1 answers
RESOURCE_EXHAUSTED and service2 records the failed call as a client. A
second service2 (job service2-stalled) points at a loopback socket that
takes connections and never answers a TLS handshake: its one say-hello
finds no replica ready within SERVICE1_CONNECT_TIMEOUT (cut to 300 ms), so
it records a client call ended Unavailable (and answers 503). Both failures
must show up under the stock go-grpc-prometheus expressions, which spell
`grpc_code` as grpc-go's Code.String() (`ResourceExhausted`,
`Unavailable`). Every dashboard query and what every alert measures
must give a number (not nothing, not NaN).
Python's standard library, and the chart tests' .venv to render the rules.
"""

import json
import math
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtools.common import REPO, SetupError, logger, run_main
from loadtools.services import Service, free_port, http_get, service_env, stop_all, tls_env, wait_ready
from tests.prometheus.promql import (Checks, PrometheusAPI, alert_rules, check_dashboard, has_data,
                                     measured)

# The chart's offline renderer (Helm's engine, in .venv: scripts/test-prometheus.sh).
sys.path.insert(0, str(REPO / "tests" / "chart"))
from chart_helpers import NAMESPACE, RELEASE, render  # noqa: E402

log = logger("test-prometheus")

DEBUG = REPO / "target" / "debug"
HOST = "127.0.0.1"
OK_CALLS = 5
# service1 refuses a request message over this many bytes with
# RESOURCE_EXHAUSTED; the one long name below is over it, the others not.
MAX_MESSAGE_BYTES = 64
LONG_NAME = "x" * 100
# How long each wait may take before the test gives up.
START_TIMEOUT_S = 30

PROCESS_NAME = {"grpc_type": "unary", "grpc_service": "app.grpc.Service1", "grpc_method": "ProcessName"}
# grpc-go's codes.Code.String() (codes/code_string.go), what
# go-grpc-prometheus writes in grpc_code.
CODES = [
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
    "Unauthenticated",
]
# The codes the stock alerts and dashboards call server-side failures:
# Thanos's *GrpcErrorRate alerts and the grpc mixins' error panels.
STOCK_FAILURE_CODES = "Unknown|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded"
# How long the stalled service2's call waits for a ready replica.
STALLED_CONNECT_TIMEOUT = "300ms"
GRPC_TYPES = {"unary", "client_stream", "server_stream", "bidi_stream"}


class Prometheus(PrometheusAPI):
    """A Prometheus process scraping `targets` ({job: ("host:port", labels)})
    every second and evaluating the rules in `rules` (a rule file's
    content) every second."""

    def __init__(self, workdir, targets, rules, taken):
        self.port = free_port([HOST], taken)
        super().__init__(f"http://{HOST}:{self.port}")
        rule_file = workdir / "rules.json"
        rule_file.write_text(json.dumps(rules, indent=2))
        config = workdir / "prometheus.yml"
        # JSON is YAML: no YAML library needed to write it.
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target], "labels": labels}]}
                for job, (target, labels) in targets.items()
            ],
        }, indent=2))
        self.logfile = workdir / "prometheus.log"
        self._out = open(self.logfile, "wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address={HOST}:{self.port}", "--log.level=warn"],
            stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(workdir),
            start_new_session=True,
        )

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if http_get(f"{self.url}/-/ready", timeout=0.5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SetupError(f"prometheus not ready after {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def log_tail(self, lines=20):
        self._out.flush()
        return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


def stalled_listener(taken):
    """A loopback socket that takes connections (the kernel completes them
    into its backlog) and never reads: a TLS handshake with it never ends."""
    port = free_port([HOST], taken)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, port))
    sock.listen(64)
    return sock


def start_services(workdir, certs, taken, stalled):
    grpc_port = free_port([HOST], taken)
    s1_port, s1_admin = free_port([HOST], taken), free_port([HOST], taken)
    service1 = Service("service1", DEBUG / "service1", service_env({
        "BIND_ADDR": HOST, "PORT": str(s1_port), "GRPC_PORT": str(grpc_port), "ADMIN_PORT": str(s1_admin),
        "GRPC_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES), **tls_env(certs, "service1"),
    }), HOST, s1_port, s1_admin, workdir / "service1.log")
    services = [service1]
    try:
        s2_port, s2_admin = free_port([HOST], taken), free_port([HOST], taken)
        services.append(Service("service2", DEBUG / "service2", service_env({
            "BIND_ADDR": HOST, "PORT": str(s2_port), "ADMIN_PORT": str(s2_admin),
            "SERVICE1_CHANNEL": f"static:///{HOST}:{grpc_port}", "TLS_SERVER_NAME": "service1",
            **tls_env(certs, "service2"),
        }), HOST, s2_port, s2_admin, workdir / "service2.log"))
        wait_ready(services, 1, START_TIMEOUT_S)
        s3_port, s3_admin = free_port([HOST], taken), free_port([HOST], taken)
        services.append(Service("service2-stalled", DEBUG / "service2", service_env({
            "BIND_ADDR": HOST, "PORT": str(s3_port), "ADMIN_PORT": str(s3_admin),
            "SERVICE1_CHANNEL": "static:///{}:{}".format(*stalled.getsockname()),
            "TLS_SERVER_NAME": "service1", "SERVICE1_CONNECT_TIMEOUT": STALLED_CONNECT_TIMEOUT,
            **tls_env(certs, "service2"),
        }), HOST, s3_port, s3_admin, workdir / "service2-stalled.log"))
        wait_ready(services[2:], 0, START_TIMEOUT_S)
    except BaseException:
        stop_all(services)
        raise
    return services


def say_hello(service2, name):
    url = f"http://{service2.addr}:{service2.port}/api/v1/say-hello?name={name}"
    return http_get(url, timeout=10)[0]


def only(result, labels, expected):
    """`result` is one series whose labels include `labels` and whose value is `expected`."""
    if len(result) != 1:
        return f"{len(result)} series, expected one"
    got_labels, value = result[0]
    missing = {k: v for k, v in labels.items() if got_labels.get(k) != v}
    if missing:
        return f"labels {got_labels} lack {missing}"
    return True if value == expected else f"{value}, expected {expected}"


DASHBOARD = REPO / "charts" / "grpc-services" / "dashboards" / "grpc-services.json"


def pod_labels(label):
    """The labels a PodMonitor's scrape gives the pod of the service
    labelled `label` (service1, service2, service2-stalled), for the release
    and namespace the chart's rules are rendered for."""
    component = label.split("-")[0]
    pod = "q2x7z" if label == component else "s7a11"
    return {"namespace": NAMESPACE, "pod": f"{RELEASE}-{component}-7c9d5b8f4d-{pod}", "container": component}


def rendered_rules():
    """The chart's PrometheusRule, rendered with its defaults (release hello,
    namespace demo), as a Prometheus rule file's content."""
    (rule,) = render({"monitoring": {"prometheusRule": {"enabled": True}}}).all("PrometheusRule")
    return rule["spec"]


def check_rules(c, p, spec):
    """Prometheus loaded and evaluated every alert of the chart, and what
    each measures has data: a metric or label renamed in the code or in the
    rule leaves it empty, and the alert could never fire."""
    alerts = alert_rules(spec)
    loaded = p.wait_for_evaluated_rules(len(alerts))
    broken = [f"{r['name']}: {r['health']} {r.get('lastError', '')}" for _, r in loaded if r["health"] != "ok"]
    c.verdict(f"rules: Prometheus evaluates all {len(alerts)} alerts without error",
              True if not broken else "; ".join(broken))
    for _, alert, expr in alerts:
        c.check(f"rule {alert}: what it measures has data", measured(expr), has_data)


def run_checks(p, rules):
    c = Checks(p, log)
    calls = OK_CALLS + 1

    # Only the failed call is an error (with grpc_code="Ok", every call was).
    exhausted = p.value('sum(rate(grpc_server_handled_total{grpc_code="ResourceExhausted"}[1m]))')

    def errors_by_method(result):
        rows = {(m.get("grpc_service"), m.get("grpc_method")): v for m, v in result}
        failing = rows.pop(("app.grpc.Service1", "ProcessName"), None)
        if failing is None or not failing > 0 or failing != exhausted:
            return f"ProcessName's error rate is {failing}, expected its ResourceExhausted rate {exhausted}"
        others = {k: v for k, v in rows.items() if v != 0}
        return True if not others else f"other methods have errors: {others}"

    c.check("errors by method (stock alert): only ProcessName, which failed once",
            'sum(rate(grpc_server_handled_total{grpc_code!="OK"}[1m])) by (grpc_service, grpc_method)',
            errors_by_method)
    c.check("error ratio: 1 call of 6, not every call",
            'sum(rate(grpc_server_handled_total{grpc_code!="OK"}[1m]))'
            ' / sum(rate(grpc_server_handled_total[1m]))',
            lambda r: True if len(r) == 1 and math.isclose(r[0][1], 1 / calls, rel_tol=1e-6)
            else f"expected {1 / calls:.4f}")
    # The stock queries, in the form go-grpc-prometheus's README and the
    # stock alerts write them: the failing calls show up under them.
    def service1_percentage(result):
        # Methods nobody called are 0/0, NaN: no number to alert on.
        rows = {m.get("grpc_service"): v for m, v in result if not math.isnan(v)}
        expected = {"app.grpc.Service1": 100 / calls}
        if rows.keys() == expected.keys() and math.isclose(rows["app.grpc.Service1"], 100 / calls, rel_tol=1e-6):
            return True
        return f"got {rows}, expected {expected}"

    c.check("stock (go-grpc-prometheus README): unary request error percentage, 1 of 6",
            'sum(rate(grpc_server_handled_total{grpc_type="unary",grpc_code!="OK"}[1m])) by (grpc_service)'
            ' / sum(rate(grpc_server_started_total{grpc_type="unary"}[1m])) by (grpc_service) * 100.0',
            service1_percentage)
    c.check("stock alert (GrpcErrorRate form): server failures over calls started, 1 of 6",
            f'sum(rate(grpc_server_handled_total{{grpc_code=~"{STOCK_FAILURE_CODES}"}}[1m]))'
            ' / sum(rate(grpc_server_started_total[1m])) * 100 > 5',
            lambda r: True if len(r) == 1 and math.isclose(r[0][1], 100 / calls, rel_tol=1e-6)
            else f"expected {100 / calls:.3f} %, firing")

    def client_failures(result):
        got = {(m.get("job"), m.get("grpc_code")) for m, v in result if v > 0}
        expected = {("service2", "ResourceExhausted"), ("service2-stalled", "Unavailable")}
        return True if got == expected else f"failing (job, code) {sorted(got)}, expected {sorted(expected)}"

    c.check("stock dashboard (client errors panel): service1's refusal and no replica ready",
            f'sum(rate(grpc_client_handled_total{{grpc_code=~"{STOCK_FAILURE_CODES}"}}[1m])) by (job, grpc_code)',
            client_failures)
    c.check("in flight: every call started has been handled",
            "sum(grpc_server_started_total) - sum(grpc_server_handled_total)",
            lambda r: only(r, {}, 0.0))
    c.check("p99 latency from the histogram: a number of seconds, under 1 s on loopback",
            "histogram_quantile(0.99, sum(rate(grpc_server_handling_seconds_bucket[1m])) by (le))",
            lambda r: True if len(r) == 1 and 0 < r[0][1] < 1 else "expected one value in (0, 1)")
    c.check("service2's calls that succeeded, as a gRPC client",
            'grpc_client_handled_total{job="service2",grpc_code="OK"}',
            lambda r: only(r, {**PROCESS_NAME, "job": "service2"}, OK_CALLS))
    c.check("service2's failed call, with service1's code",
            'grpc_client_handled_total{job="service2",grpc_code="ResourceExhausted"}',
            lambda r: only(r, {**PROCESS_NAME, "job": "service2"}, 1))
    c.check("service1's answers by code",
            'sum(grpc_server_handled_total{grpc_method="ProcessName"}) by (grpc_code) > 0',
            lambda r: True if sorted((m["grpc_code"], v) for m, v in r)
            == [("OK", OK_CALLS), ("ResourceExhausted", 1)] else "expected OK 5, ResourceExhausted 1")
    for family, expected in [
        ("grpc_server_started_total", calls),
        ("grpc_client_started_total", calls),
        # Every request message arrived (the long one too large to take);
        # an answer went back for each OK.
        ("grpc_server_msg_received_total", calls),
        ("grpc_server_msg_sent_total", OK_CALLS),
        ("grpc_client_msg_sent_total", calls),
        ("grpc_client_msg_received_total", OK_CALLS),
    ]:
        c.check(f"{family}: {expected}", f'{family}{{job=~"service1|service2",grpc_method="ProcessName"}}',
                lambda r, expected=expected: only(r, PROCESS_NAME, expected))

    def codes(result):
        got = sorted(m["grpc_code"] for m, _ in result)
        return True if got == sorted(CODES) else f"codes {got}"

    c.check("grpc_code: the 17 names of grpc-go's Code.String()",
            "count(grpc_server_handled_total) by (grpc_code)", codes)

    def closed(result):
        types = {m.get("grpc_type") for m, _ in result}
        methods = {m.get("grpc_method") for m, _ in result}
        if not types <= GRPC_TYPES:
            return f"grpc_type values {types}"
        bare = all(re.fullmatch(r"[A-Za-z]+", m or "") for m in methods)
        return True if bare else f"grpc_method values are not bare names: {methods}"

    c.check("grpc_type and grpc_method: closed sets, bare method names",
            "count(grpc_server_started_total) by (grpc_type, grpc_service, grpc_method)", closed)
    check_dashboard(c, json.loads(DASHBOARD.read_text()), NAMESPACE)
    check_rules(c, p, rules)
    c.check("no series of the old forms (tonic's Debug names, UPPER_SNAKE, full paths)",
            'count({__name__=~"grpc_.*_handled_total", grpc_code!~"OK|([A-Z][a-z]+)+"})'
            ' or count({__name__=~"grpc_.*", grpc_method=~"/.*"})',
            lambda r: True if not r else "old label values are still there")
    return c.failed


def main():
    if shutil.which("prometheus") is None:
        raise SetupError("no `prometheus` on PATH (Debian: apt-get install prometheus)")
    for binary in ("service1", "service2", "certgen"):
        if not (DEBUG / binary).exists():
            raise SetupError(f"{DEBUG / binary} is missing: cargo build --workspace --bins")
    version = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout
    log(version.splitlines()[0] if version else "prometheus --version said nothing")
    workdir = Path(tempfile.mkdtemp(prefix="test-prometheus-"))
    services, prometheus, stalled = [], None, None
    try:
        certs = workdir / "certs"
        subprocess.run([str(DEBUG / "certgen"), "--out", str(certs)], check=True, stdout=subprocess.DEVNULL)
        taken = set()
        stalled = stalled_listener(taken)
        services = start_services(workdir, certs, taken, stalled)
        service1, service2, service2_stalled = services
        rules = rendered_rules()
        prometheus = Prometheus(
            workdir, {s.label: (f"{s.addr}:{s.admin_port}", pod_labels(s.label)) for s in services},
            rules, taken)
        prometheus.wait_ready()
        # A scrape of each before any call, so every series has its zero
        # stored and rate() sees the calls as increases.
        prometheus.wait_for('count(up == 1)', 3, "the three targets up")
        prometheus.wait_for("count(grpc_server_handled_total)", lambda n: n and n > 0,
                            "grpc_server_handled_total at zero")
        prometheus.wait_for("count(count(grpc_client_handled_total) by (job))", 2,
                            "both service2s' grpc_client_handled_total at zero")

        # Phase one makes the say-hello HTTP series (they begin at the first
        # call): an OK and the failing call. Once a scrape stored them,
        # phase two moves them, so rates are numbers and not 0/0.
        statuses = [say_hello(service2, "prom"), say_hello(service2, LONG_NAME)]
        prometheus.wait_for('count(http_server_requests_total{job="service2",route="/api/v1/say-hello"})', 2,
                            "say-hello's 200 and 503 series scraped")
        statuses += [say_hello(service2, "prom") for _ in range(OK_CALLS - 1)]
        if statuses != [200, 503] + [200] * (OK_CALLS - 1):
            raise AssertionError(f"say-hello answered {statuses}, expected 200, 503, then 200 x{OK_CALLS - 1}")
        stalled_status = say_hello(service2_stalled, "prom")
        if stalled_status != 503:
            raise AssertionError(f"the stalled service2 answered {stalled_status}, expected 503 (no replica ready)")
        calls = OK_CALLS + 1
        prometheus.wait_for("sum(grpc_server_handled_total)", calls, "service1's calls scraped")
        prometheus.wait_for('sum(grpc_client_handled_total{job="service2"})', calls, "service2's calls scraped")
        prometheus.wait_for('sum(grpc_client_handled_total{job="service2-stalled"})', 1,
                            "the stalled service2's call scraped")
        prometheus.wait_for('sum(http_server_requests_total{job="service2",route="/api/v1/say-hello"})', calls,
                            "service2's say-hello calls scraped")
        prometheus.pin()

        failed = run_checks(prometheus, rules)
        if failed:
            log(f"{failed} check(s) failed; logs in {workdir}")
            workdir = None  # kept for a look
            return 1
        log("all checks passed")
        return 0
    except (AssertionError, SetupError):
        for s in services:
            log(f"{s.label} log tail:\n{s.log_tail()}")
        if prometheus:
            log(f"prometheus log tail:\n{prometheus.log_tail()}")
        log(f"logs in {workdir}")
        workdir = None  # kept for a look
        raise
    finally:
        if prometheus:
            prometheus.stop()
        stop_all(services)
        if stalled:
            stalled.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def entry():
    try:
        return main()
    except AssertionError as e:
        log(f"FAIL  {e}")
        return 1


if __name__ == "__main__":
    run_main(entry, log)
