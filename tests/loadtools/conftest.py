"""The harness's logic on made-up runs: no service, no oha, no /proc. `runs`
builds a whole plan's results the way runs.measure records them, with every
figure chosen by the test."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadtools.bench import rounds  # noqa: E402
from loadtools.bench.runs import plan  # noqa: E402

# CPU µs/request (s1+s2; name: s1) that meet every target: ours ÷ Go 0.3,
# ours ÷ tonic + axum 0.5, name ours ÷ Go 0.4.
GOOD_CPU = {("ours", "say-hello"): 30.0, ("baseline", "say-hello"): 60.0,
            ("go", "say-hello"): 100.0, ("ours", "name"): 8.0, ("baseline", "name"): 12.0,
            ("go", "name"): 20.0}


def config(**over):
    cfg = {"concurrency": [10, 100], "rate": 2000, "rate_concurrency": 100, "replicas": [1, 3],
           "baselines": ["baseline", "go"], "baseline": True, "rounds": 3, "duration_s": 10.0,
           "warmup_s": 2.0, "worker_threads": 1, "smoke": False}
    cfg.update(over)
    return cfg


def one_run(spec, round_no, rounds_n, cpu=None, p99=0.5, errors=0, rss=10.0):
    cpu = cpu if cpu is not None else GOOD_CPU[(spec["pair"], spec["target"])]
    procs = [{"process": f"{spec['pair']}-service1", "service": "service1", "rss_after_mib": rss,
              "peak_rss_mib": rss, "cpu_us_per_req": cpu, "access_lines": 100}]
    if spec["target"] == "say-hello":
        procs.append({"process": f"{spec['pair']}-service2", "service": "service2",
                      "rss_after_mib": rss, "peak_rss_mib": rss, "cpu_us_per_req": 0.0,
                      "access_lines": 100})
    return {**spec, "id": rounds.round_id(spec["id"], round_no, rounds_n), "round": round_no,
            "rps": 1000.0, "completed": 10_000, "errors": errors,
            "latency_ms": {"p50": 0.2, "p90": 0.3, "p99": p99, "p99.9": p99 * 2},
            "cpu_us_per_req": {"service1": cpu, "service2": 0.0, "total": cpu},
            "processes": procs}


@pytest.fixture
def measured():
    """measured(cfg, tweak) → (runs with medians, every round's runs). tweak(run,
    round) may return a dict of one_run's figures for that run in that round."""

    def make(cfg, tweak=lambda run, round_no: {}):
        n = cfg["rounds"]
        each = [[one_run(s, i, n, **tweak(s, i)) for s in plan(cfg)] for i in range(1, n + 1)]
        return rounds.combine(each)

    return make
