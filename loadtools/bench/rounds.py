"""BENCH_ROUNDS: the whole plan run several times over, rounds interleaved
(all of round 1, then all of round 2, ...), so a slow minute of the machine
lands on every kind of run alike; then each figure is the median over the
rounds. Ratios (ours ÷ baseline, say-hello ÷ name) are taken within a round,
between runs seconds apart, and their median reported."""

import copy
from statistics import median

from loadtools.bench import targets


def round_id(run_id, n, rounds):
    return f"{run_id}@r{n}" if rounds > 1 else run_id


def med(values):
    values = [v for v in values if v is not None]
    return median(values) if values else None


def merge(rounds_of_one):
    """One run's rounds → one run whose figures are the medians; the
    representative (processes, host figures, logs) is the round with the
    median CPU per request. RSS is the largest over the rounds (a limit,
    not a typical value); errors are summed."""
    by_cpu = sorted(rounds_of_one, key=lambda r: r["cpu_us_per_req"]["total"] or 0)
    out = copy.deepcopy(by_cpu[len(by_cpu) // 2])
    out["id"] = out["id"].split("@")[0]
    out["rps"] = med(r["rps"] for r in rounds_of_one)
    for key in out["latency_ms"]:
        out["latency_ms"][key] = med(r["latency_ms"][key] for r in rounds_of_one)
    for key in out["cpu_us_per_req"]:
        out["cpu_us_per_req"][key] = med(r["cpu_us_per_req"][key] for r in rounds_of_one)
    out["cpu_ratio_vs_name"] = med(r.get("cpu_ratio_vs_name") for r in rounds_of_one)
    pairs = sorted({p for r in rounds_of_one for p in r.get("vs") or {}})
    if pairs:
        twins = [r.get("vs") or {} for r in rounds_of_one]
        out["vs"] = {p: {
            "run": next(t[p]["run"] for t in twins if p in t).split("@")[0],
            "cpu": med(t[p]["cpu"] for t in twins if p in t),
            "rps": med(t[p]["rps"] for t in twins if p in t),
        } for p in pairs}
    out["errors"] = sum(r["errors"] for r in rounds_of_one)
    out["completed"] = sum(r["completed"] for r in rounds_of_one)
    for p in out["processes"]:
        same = [q for r in rounds_of_one for q in r["processes"] if q["process"] == p["process"]]
        p["peak_rss_mib"] = max(q["peak_rss_mib"] for q in same)
        p["rss_after_mib"] = max(q["rss_after_mib"] for q in same)
    out["rounds"] = [{"id": r["id"], "rps": r["rps"], "cpu_us_per_req": r["cpu_us_per_req"]["total"],
                      "p99_ms": r["latency_ms"]["p99"],
                      "vs_cpu": {p: v["cpu"] for p, v in (r.get("vs") or {}).items()}}
                     for r in rounds_of_one]
    return out


def combine(rounds):
    """[[run of round 1, ...], [round 2], ...] → (runs with medians, every
    round's runs). Ratios are added within each round first."""
    for runs in rounds:
        targets.add_ratios(runs)
    every = [r for runs in rounds for r in runs]
    if len(rounds) == 1:
        return every, every
    order = [r["id"].split("@")[0] for r in rounds[0]]
    grouped = {rid: [r for r in every if r["id"].split("@")[0] == rid] for rid in order}
    return [merge(grouped[rid]) for rid in order], every
