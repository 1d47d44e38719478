"""The targets of issues 7 and 17, as the benchmark checks them. Those of
issue 17 compare ours with the baseline pair (bench/baseline/) measured in
the same run; the others apply to ours only."""

TARGET_CPU_US = 60.0  # say-hello CPU per request, service1 + service2
TARGET_CPU_RATIO = 2.5  # ... divided by /api/v1/name's (service1)
TARGET_RSS_MIB = 16.0  # VmRSS of each service process after its run (issue 17; issue 7 had 20)
TARGET_P99_MS = 1.0  # p99 at the fixed rate with 3 replicas (issue 17)
TARGET_P99_MS_1X = 2.0  # ... with 1 replica (issue 7)
# Issue 17: ours ÷ the baseline's at the same closed-loop load, same run.
TARGET_VS_BASELINE = {"say-hello": 0.6, "name": 1.0}  # CPU per request, at most
TARGET_RPS_VS_BASELINE = 1.0  # say-hello req/s at c100, at least
RPS_CONCURRENCY = 100

DEFINITION = {"cpu_us_per_req_max": TARGET_CPU_US, "cpu_ratio_vs_name_max": TARGET_CPU_RATIO,
              "rss_after_mib_max": TARGET_RSS_MIB,
              "p99_ms_at_rate_max": {"3 replicas": TARGET_P99_MS, "1 replica": TARGET_P99_MS_1X},
              "errors_max": 0,
              "cpu_ratio_vs_baseline_max": TARGET_VS_BASELINE,
              "rps_ratio_vs_baseline_min": {f"say-hello c{RPS_CONCURRENCY}":
                                            TARGET_RPS_VS_BASELINE}}


def ours(runs):
    return [r for r in runs if r.get("pair", "ours") == "ours"]


def add_ratios(runs):
    """say-hello's CPU per request ÷ /api/v1/name's at the same load, within
    each pair; and each 1-replica run of ours ÷ the baseline's at the same load."""
    name = {(r["pair"], r["mode"]): r for r in runs if r["target"] == "name"}
    base = {(r["target"], r["mode"]): r for r in runs if r["pair"] == "baseline"}
    for r in runs:
        if r["target"] == "say-hello":
            ref = name.get((r["pair"], r["mode"]))
            r["cpu_ratio_vs_name"] = ratio(r["cpu_us_per_req"]["total"],
                                           ref and ref["cpu_us_per_req"]["service1"])
        twin = base.get((r["target"], r["mode"]))
        if r["pair"] == "ours" and r["replicas"] == 1 and twin:
            r["vs_baseline"] = {
                "run": twin["id"],
                "cpu": ratio(r["cpu_us_per_req"]["total"], twin["cpu_us_per_req"]["total"]),
                "rps": ratio(r["rps"], twin["rps"]),
            }


def ratio(mine, theirs):
    return mine / theirs if mine is not None and theirs else None


def row(target, run, value, limit, unit, ok, op="≤"):
    return {"target": target, "run": run, "value": value, "limit": limit, "unit": unit,
            "pass": bool(ok), "op": op}


def baseline_rows(runs):
    """Issue 17: CPU per request ours ÷ baseline at each closed-loop load;
    say-hello throughput ours ÷ baseline at c100."""
    paired = [r for r in runs if r.get("vs_baseline") and not r["rate"]]
    rows = []
    for r in sorted(paired, key=lambda r: r["target"] != "say-hello"):
        v, limit = r["vs_baseline"]["cpu"], TARGET_VS_BASELINE[r["target"]]
        rows.append(row(f"{r['target']} CPU/request ours ÷ baseline", r["id"], v, limit, "×",
                        v is not None and v <= limit))
    for r in paired:
        if r["target"] == "say-hello" and r["concurrency"] == RPS_CONCURRENCY:
            v = r["vs_baseline"]["rps"]
            rows.append(row("say-hello req/s ours ÷ baseline", r["id"], v,
                            TARGET_RPS_VS_BASELINE, "×",
                            v is not None and v >= TARGET_RPS_VS_BASELINE, op="≥"))
    return rows


def cpu_rows(runs):
    say_hello = [r for r in ours(runs) if r["target"] == "say-hello"]
    rows = []
    for r in say_hello:
        v = r["cpu_us_per_req"]["total"]
        rows.append(row("say-hello CPU/request (s1+s2)", r["id"], v, TARGET_CPU_US, "µs",
                        v is not None and v <= TARGET_CPU_US))
    for r in say_hello:
        v = r.get("cpu_ratio_vs_name")
        rows.append(row("say-hello CPU/request ÷ name's", r["id"], v, TARGET_CPU_RATIO, "×",
                        v is not None and v <= TARGET_CPU_RATIO))
    return rows


def rss_rows(runs):
    """The largest RSS after a run, per service, over every run."""
    rows = []
    for kind in ("service1", "service2"):
        procs = [(p["rss_after_mib"], r["id"], p["process"]) for r in ours(runs)
                 for p in r["processes"] if p["service"] == kind]
        if procs:
            v, rid, label = max(procs)
            rows.append(row(f"{kind} RSS after the run (max of {len(procs)} processes)",
                            f"{rid} {label}", v, TARGET_RSS_MIB, "MiB", v <= TARGET_RSS_MIB))
    return rows


def latency_and_error_rows(runs):
    rows = []
    for r in ours(runs):
        if r["target"] == "say-hello" and r["rate"]:
            v = r["latency_ms"]["p99"]
            limit = TARGET_P99_MS_1X if r["replicas"] == 1 else TARGET_P99_MS
            rows.append(row(f"p99 at {r['rate']} req/s", r["id"], v, limit, "ms",
                            v is not None and v <= limit))
    errs = sum(r["errors"] for r in runs)
    bad = [r["id"] for r in runs if r["errors"]]
    rows.append(row("zero errors (non-200 + connection)", ", ".join(bad) or "all runs", errs, 0,
                    "", errs == 0))
    return rows


def check_targets(runs, cfg):
    rows = (cpu_rows(runs) + baseline_rows(runs) + rss_rows(runs)
            + latency_and_error_rows(runs))
    if cfg["rate"] != 2000 or cfg["duration_s"] < 10:
        for x in rows:
            x["note"] = "non-default settings"
    return rows
