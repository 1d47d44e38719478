"""The targets of issue 7, as the benchmark checks them."""

TARGET_CPU_US = 60.0  # say-hello CPU per request, service1 + service2
TARGET_CPU_RATIO = 2.5  # ... divided by /api/v1/name's (service1)
TARGET_RSS_MIB = 20.0  # VmRSS of each service process after its run
TARGET_P99_MS = 2.0  # p99 at the fixed rate

DEFINITION = {"cpu_us_per_req_max": TARGET_CPU_US, "cpu_ratio_vs_name_max": TARGET_CPU_RATIO,
              "rss_after_mib_max": TARGET_RSS_MIB, "p99_ms_at_rate_max": TARGET_P99_MS,
              "errors_max": 0}


def add_ratios(runs):
    """say-hello's CPU per request ÷ /api/v1/name's at the same load."""
    ref = {r["mode"]: r for r in runs if r["target"] == "name"}
    for r in runs:
        if r["target"] != "say-hello":
            continue
        base = ref.get(r["mode"])
        mine = r["cpu_us_per_req"]["total"]
        theirs = base and base["cpu_us_per_req"]["service1"]
        r["cpu_ratio_vs_name"] = mine / theirs if mine is not None and theirs else None


def row(target, run, value, limit, unit, ok):
    return {"target": target, "run": run, "value": value, "limit": limit, "unit": unit,
            "pass": bool(ok)}


def cpu_rows(runs):
    say_hello = [r for r in runs if r["target"] == "say-hello"]
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
        procs = [(p["rss_after_mib"], r["id"], p["process"]) for r in runs
                 for p in r["processes"] if p["service"] == kind]
        if procs:
            v, rid, label = max(procs)
            rows.append(row(f"{kind} RSS after the run (max of {len(procs)} processes)",
                            f"{rid} {label}", v, TARGET_RSS_MIB, "MiB", v <= TARGET_RSS_MIB))
    return rows


def latency_and_error_rows(runs):
    rows = []
    for r in runs:
        if r["target"] == "say-hello" and r["rate"]:
            v = r["latency_ms"]["p99"]
            rows.append(row(f"p99 at {r['rate']} req/s", r["id"], v, TARGET_P99_MS, "ms",
                            v is not None and v <= TARGET_P99_MS))
    errs = sum(r["errors"] for r in runs)
    bad = [r["id"] for r in runs if r["errors"]]
    rows.append(row("zero errors (non-200 + connection)", ", ".join(bad) or "all runs", errs, 0,
                    "", errs == 0))
    return rows


def check_targets(runs, cfg):
    rows = cpu_rows(runs) + rss_rows(runs) + latency_and_error_rows(runs)
    if cfg["rate"] != 2000 or cfg["duration_s"] < 10:
        for x in rows:
            x["note"] = "non-default settings"
    return rows
