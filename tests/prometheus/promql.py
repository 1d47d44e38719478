"""What both live Prometheus checks share: a client for Prometheus's HTTP
API, the chart's dashboard queries and its alert expressions.

`make test-prometheus` (check.py: the services on loopback) and
`make test-cluster` (cluster_check.py: the chart's pods, found through the
PodMonitor the chart installs) ask the same questions of what Prometheus
stored, so a metric or label renamed in the code, the dashboard or the rules
fails both. Python's standard library only.
"""

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request

# How long a wait for a scrape or a rule evaluation may take.
WAIT_TIMEOUT_S = 30


class PrometheusAPI:
    """Queries against the Prometheus at `url` (http://host:port)."""

    def __init__(self, url):
        self.url = url
        # Checks evaluate at one instant (`pin`), so that they agree.
        self.at = None

    def get(self, path, **params):
        url = f"{self.url}{path}" + (("?" + urllib.parse.urlencode(params)) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.load(resp)["data"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{path} {params}: HTTP {e.code}: {e.read()[:300]!r}") from None

    def query(self, promql):
        """The result of an instant query: [(labels, value)]; a scalar as [({}, value)]."""
        params = {"query": promql, **({"time": f"{self.at:.3f}"} if self.at is not None else {})}
        data = self.get("/api/v1/query", **params)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, promql):
        """The one value `promql` gives, or None when it gives none."""
        result = self.query(promql)
        if len(result) > 1:
            raise AssertionError(f"{promql}: {len(result)} series, expected one: {result}")
        return result[0][1] if result else None

    def wait_for(self, promql, expected, what, timeout=WAIT_TIMEOUT_S):
        """Polls until `promql` gives `expected` (a value, or a test of the
        value): proof that the scrape or evaluation we need is stored."""
        test = expected if callable(expected) else (lambda got: got == expected)
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.value(promql)
            if test(got):
                return
            time.sleep(0.2)
        raise AssertionError(f"{what}: {promql} gave {got} for {timeout}s")

    def pin(self):
        """Evaluates every later query at the newest scrape stored, so that
        each target's newest sample counts and a scrape landing meanwhile
        does not move rate() between one check and the next."""
        self.at = self.query("max(timestamp(up))")[0][1]
        return self.at

    def rules(self):
        """Every rule Prometheus has loaded: [(group, rule)] as /api/v1/rules gives them."""
        return [(g["name"], r) for g in self.get("/api/v1/rules")["groups"] for r in g["rules"]]

    def wait_for_evaluated_rules(self, expected, timeout=WAIT_TIMEOUT_S):
        """Waits until `expected` rules are loaded and each was evaluated once."""
        deadline = time.monotonic() + timeout
        rules = []
        while time.monotonic() < deadline:
            rules = self.rules()
            if len(rules) == expected and all(not r["lastEvaluation"].startswith("0001") for _, r in rules):
                return rules
            time.sleep(0.2)
        raise AssertionError(f"{len(rules)} rules loaded and evaluated after {timeout}s, expected {expected}")


class Checks:
    """Runs checks, printing each; counts failures rather than stopping at
    the first. With `detail` off, a passing check is one line."""

    def __init__(self, prometheus, log, detail=True):
        self.prometheus, self.log, self.detail, self.failed = prometheus, log, detail, 0

    def check(self, what, promql, test):
        try:
            result = self.prometheus.query(promql)
            verdict = test(result)
        except AssertionError as e:
            result, verdict = None, str(e)
        shown = [({k: v for k, v in labels.items() if k != "instance"}, value) for labels, value in result or []]
        if verdict is True:
            self.log(f"ok    {what}\n        {promql}\n        = {shown}" if self.detail else f"ok    {what}")
        else:
            self.failed += 1
            self.log(f"FAIL  {what}: {verdict}\n        {promql}\n        = {shown}")

    def verdict(self, what, verdict):
        """A check whose verdict is already known (True, or why not)."""
        if verdict is True:
            self.log(f"ok    {what}")
        else:
            self.failed += 1
            self.log(f"FAIL  {what}: {verdict}")


def has_data(result):
    """A number to show: a renamed metric or label gives no series, and
    rates of counters that never moved give NaN quantiles and ratios."""
    if not result:
        return "no data: a metric or label it needs is missing"
    if all(math.isnan(value) for _, value in result):
        return "NaN only: the series it reads never moved in the window"
    return True


def dashboard_queries(dashboard, namespace):
    """[(what, promql)] for every query of the chart's Grafana dashboard
    (the JSON), with Grafana's variables set to what they would stand for:
    `namespace` (a regex), `job` as its "All" value (.*), a 1 minute rate
    window."""
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            promql = (target["expr"].replace("$__rate_interval", "1m").replace("$namespace", namespace)
                      .replace("$job", ".*"))
            queries.append((f"dashboard: {panel['title']} ({target['refId']})", promql))
    return queries


def check_dashboard(c, dashboard, namespace):
    """Every query of the dashboard returns data: a renamed metric or label
    would leave its panel empty."""
    for what, promql in dashboard_queries(dashboard, namespace):
        c.check(what, promql, has_data)


# The comparison that ends an alert expression: `... > 0.05`, `... == 0`.
THRESHOLD = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+]?[0-9.]+(e[-+]?[0-9]+)?\s*$")


def measured(expr):
    """An alert expression without the comparison it ends with: what the
    alert measures, which has data whenever the series it reads exist."""
    return THRESHOLD.sub("", expr.strip())


def alert_rules(spec):
    """[(group, alert, expr)] of a PrometheusRule's spec."""
    return [(g["name"], r["alert"], r["expr"]) for g in spec["groups"] for r in g["rules"] if "alert" in r]
