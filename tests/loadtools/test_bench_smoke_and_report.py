"""BENCH_SMOKE's verdict (loadtools/bench/smoke.py) and what results.md
says first (loadtools/bench/report.py)."""

from conftest import config

from loadtools.bench import smoke
from loadtools.bench.report import markdown
from loadtools.bench.runs import plan
from loadtools.bench.targets import check_targets

MACHINE = {"nproc": 2, "cpu_model": "Test CPU @ 2.0GHz", "kernel": "Linux 6.1.0 x86_64",
           "mem_total": "23.4 GiB RAM", "oha_version": "oha 1.16.0", "git_commit": "a" * 40,
           "git_dirty": True, "loadavg_at_start": ["3.10", "2.50", "1.20"],
           "go_version": "go version go1.26.8 linux/amd64"}


def doc_of(cfg, runs):
    rows = check_targets(runs, cfg)
    for r in runs:
        r.setdefault("url", f"http://127.0.0.1:1/api/v1/{r['target']}")
        r.setdefault("loadgen_cpu_us_per_req", 1.0)
        r.setdefault("host", {"busy_pct": 50.0, "steal_pct": 0.0})
        for p in r["processes"]:
            p.update(pid=1, addr="127.0.0.2", cpu_s=1.0, log_lines=100, exit_code=-15)
    return {"timestamp": "20261207T010000Z", "machine": MACHINE, "settings": cfg, "runs": runs,
            "targets": rows, "all_targets_met": all(t["pass"] for t in rows)}


def test_a_complete_smoke_run_passes_whatever_its_timings(measured):
    # One round whose figures miss every timing target: the smoke asserts no timing.
    cfg = config(rounds=1, duration_s=1.0, smoke=True)
    runs, _ = measured(cfg, lambda run, i: {"cpu": 1000.0, "p99": 50.0}
                       if run["pair"] == "ours" else {})
    doc = doc_of(cfg, runs)
    assert not doc["all_targets_met"]
    assert smoke.problems(doc, [r["id"] for r in plan(cfg)]) == []


def test_smoke_fails_on_a_missing_run_a_target_not_measured_and_errors(measured):
    cfg = config(rounds=1, smoke=True)
    runs, _ = measured(config(rounds=1, baselines=["baseline"]),
                       lambda run, i: {"errors": 1} if run["id"] == "name-1x-c10" else {})
    found = smoke.problems(doc_of(cfg, runs), [r["id"] for r in plan(cfg)])
    assert "run go-name-1x-c10 missing from the results" in found
    assert "run name-1x-c10: 1 errors" in found
    assert "target not measured: say-hello CPU/request ours ÷ Go [say-hello-1x-c100]" in found


def test_smoke_fails_when_a_process_logged_no_access_line(measured):
    cfg = config(rounds=1, smoke=True)
    runs, _ = measured(cfg)
    runs[1]["processes"][0]["access_lines"] = 0
    found = smoke.problems(doc_of(cfg, runs), [r["id"] for r in plan(cfg)])
    assert found == ["run baseline-name-1x-c10: baseline-service1 wrote no access log line"]


def test_results_md_opens_with_commit_dirty_flag_machine_and_load(measured):
    cfg = config()
    md = markdown(doc_of(cfg, measured(cfg)[0])).splitlines()
    assert md[0] == "# Benchmark 20261207T010000Z"
    assert md[2] == "- Commit: `aaaaaaaaaaaa`, **uncommitted changes** in the tree"
    assert md[3] == ("- Machine: 2 cores, Test CPU @ 2.0GHz, Linux 6.1.0 x86_64, "
                     "23.4 GiB RAM")
    assert md[4] == "- Load average at start: 3.10 2.50 1.20"


def test_results_md_shows_both_ratios_and_not_measured_targets(measured):
    cfg = config(concurrency=[10])
    md = markdown(doc_of(cfg, measured(cfg)[0]))
    assert ("| endpoint | load | CPU µs/req ours | tonic + axum | Go | ours ÷ tonic + axum "
            "| ours ÷ Go |") in md
    assert "| say-hello | c10 | 30.0 | 60.0 | 100.0 | **0.50** | **0.30** |" in md
    assert ("| name CPU/request ours ÷ Go | name-1x-c100 | – | ≤ 0.45 × "
            "| **NOT MEASURED** |") in md
    assert "| say-hello CPU/request ours ÷ Go | say-hello-1x-c10 | 0.300 × | ≤ 0.40 × | PASS |" in md
    assert "All targets met: **no**." in md
