"""The targets of issue 25, as the benchmark checks them: ours beside the Go
pair (bench/baseline-go/) and the tonic + axum pair (bench/baseline/)
measured in the same run, p99 at a fixed rate in every round, RSS and
errors.

Each target has a fixed list of rows, whatever the settings: a row whose run
was not measured (BENCH_BASELINES, BENCH_REPLICAS, BENCH_CONCURRENCY or
BENCH_RATE left it out) is NOT MEASURED and counts as missed, so no setting
can pass the targets by leaving a run out."""

# CPU per request, ours ÷ the other pair's, at most: (endpoint, pair) → limit.
TARGET_CPU_VS = {("say-hello", "go"): 0.40, ("say-hello", "baseline"): 0.55,
                 ("name", "go"): 0.45}
CLOSED_LOOP = (10, 100)  # the concurrencies those ratios are checked at
TARGET_P99_MS = 1.0  # say-hello p99 at the fixed rate with 3 replicas, every round
P99_RATE, P99_REPLICAS = 2000, 3
TARGET_RSS_MIB = 16.0  # VmRSS of each of our service processes after its run
PAIR_NAMES = {"ours": "ours", "baseline": "tonic + axum", "go": "Go"}

PASS, FAIL, NOT_MEASURED = "PASS", "FAIL", "NOT MEASURED"

DEFINITION = {
    "cpu_ratio_vs_pair_max": {f"{t} ÷ {PAIR_NAMES[p]}": v for (t, p), v in TARGET_CPU_VS.items()},
    "cpu_ratio_at_concurrency": list(CLOSED_LOOP),
    "p99_ms_every_round_max": {f"say-hello {P99_REPLICAS}x {P99_RATE} req/s": TARGET_P99_MS},
    "rss_after_mib_max": TARGET_RSS_MIB,
    "errors_max": 0,
    "missing_row": "not measured, counts as missed",
}


def ratio(mine, theirs):
    return mine / theirs if mine is not None and theirs else None


def add_ratios(runs):
    """Within one round: say-hello's CPU per request ÷ /api/v1/name's at the
    same load, within each pair (shown, not a target); and each 1-replica run
    of ours ÷ each other pair's run at the same load, in r["vs"][pair]."""
    name = {(r["pair"], r["mode"]): r for r in runs if r["target"] == "name"}
    others = {(r["pair"], r["target"], r["mode"]): r for r in runs if r["pair"] != "ours"}
    pairs = sorted({r["pair"] for r in runs if r["pair"] != "ours"})
    for r in runs:
        if r["target"] == "say-hello":
            ref = name.get((r["pair"], r["mode"]))
            r["cpu_ratio_vs_name"] = ratio(r["cpu_us_per_req"]["total"],
                                           ref and ref["cpu_us_per_req"]["service1"])
        if r["pair"] != "ours" or r["replicas"] != 1:
            continue
        for pair in pairs:
            twin = others.get((pair, r["target"], r["mode"]))
            if twin:
                r.setdefault("vs", {})[pair] = {
                    "run": twin["id"],
                    "cpu": ratio(r["cpu_us_per_req"]["total"], twin["cpu_us_per_req"]["total"]),
                    "rps": ratio(r["rps"], twin["rps"]),
                }


def row(target, run, value, limit, unit, ok, op="≤", **extra):
    """ok None: the run behind the row was not measured (a miss)."""
    status = NOT_MEASURED if ok is None else PASS if ok else FAIL
    return {"target": target, "run": run, "value": value, "limit": limit, "unit": unit,
            "op": op, "status": status, "pass": status == PASS, **extra}


def by_id(runs):
    return {r["id"].split("@")[0]: r for r in runs}


def vs_rows(runs):
    """CPU per request ours ÷ each other pair, 1 replica, at c10 and c100."""
    runs, rows = by_id(runs), []
    for (target, pair), limit in TARGET_CPU_VS.items():
        for c in CLOSED_LOOP:
            rid = f"{target}-1x-c{c}"
            v = ((runs.get(rid) or {}).get("vs") or {}).get(pair, {}).get("cpu")
            rows.append(row(f"{target} CPU/request ours ÷ {PAIR_NAMES[pair]}", rid, v, limit,
                            "×", None if v is None else v <= limit))
    return rows


def per_round(r, key):
    """One figure of a run in each round ([value, ...]); a single round's is its own."""
    if r.get("rounds"):
        return [x[key] for x in r["rounds"]]
    return [r["latency_ms"]["p99"] if key == "p99_ms" else r[key]]


def p99_row(runs):
    """A percentile holds in every round: the row's value is the worst round's."""
    rid = f"say-hello-{P99_REPLICAS}x-{P99_RATE}rps"
    r = by_id(runs).get(rid)
    values = per_round(r, "p99_ms") if r else []
    known = [v for v in values if v is not None]
    ok = None if not known or len(known) != len(values) else max(known) <= TARGET_P99_MS
    return row(f"p99 at {P99_RATE:,} req/s, {P99_REPLICAS} replicas, every round", rid,
               max(known) if known else None, TARGET_P99_MS, "ms", ok, rounds=values)


def rss_rows(runs):
    """The largest RSS after a run, per service of ours, over every run."""
    rows = []
    for kind in ("service1", "service2"):
        procs = [(p["rss_after_mib"], r["id"], p["process"]) for r in runs
                 if r["pair"] == "ours" for p in r["processes"] if p["service"] == kind]
        if not procs:
            rows.append(row(f"{kind} RSS after the run", "–", None, TARGET_RSS_MIB, "MiB", None))
            continue
        v, rid, label = max(procs)
        rows.append(row(f"{kind} RSS after the run (max of {len(procs)} processes)",
                        f"{rid} {label}", v, TARGET_RSS_MIB, "MiB", v <= TARGET_RSS_MIB))
    return rows


def error_row(runs):
    """Every run, every pair: a failing pair would make the comparison meaningless."""
    errs = sum(r["errors"] for r in runs)
    bad = [r["id"] for r in runs if r["errors"]]
    return row("zero errors (non-200 + connection), every pair", ", ".join(bad) or "all runs",
               errs if runs else None, 0, "", errs == 0 if runs else None)


def check_targets(runs, cfg):
    rows = vs_rows(runs) + [p99_row(runs)] + rss_rows(runs) + [error_row(runs)]
    if cfg["rate"] != P99_RATE or cfg["duration_s"] < 10 or cfg["rounds"] < 3:
        for x in rows:
            x["note"] = "non-default settings"
    return rows
