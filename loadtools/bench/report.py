"""results.md: the runs, the targets and every process, as tables."""


from loadtools.bench.instructions import instructions_table
from loadtools.bench.targets import PAIR_NAMES
from loadtools.common import fmt


def load_desc(r):
    return (f"{r['rate']:,} req/s, c{r['concurrency']}" if r["rate"]
            else f"c{r['concurrency']}")


def pairs_desc(cfg):
    names = {"baseline": "`baseline-*`: the straightforward tonic + axum pair (bench/baseline/)",
             "go": "`go-*`: the straightforward Go pair, grpc-go + net/http + slog "
                   "(bench/baseline-go/)"}
    chosen = cfg.get("baselines", ["baseline"] if cfg.get("baseline") else [])
    if not chosen:
        return "- No other pairs measured (`BENCH_BASELINES=none`)"
    return ("- Other pairs, each run right after ours at the same load: "
            + "; ".join(names[p] for p in chosen))


def header(doc):
    """The first lines say what was measured where: commit, dirty tree, machine,
    load at the start."""
    m, cfg = doc["machine"], doc["settings"]
    return [
        f"# Benchmark {doc['timestamp']}", "",
        f"- Commit: `{m['git_commit'][:12]}`, "
        + ("**uncommitted changes** in the tree" if m["git_dirty"] else "clean tree"),
        f"- Machine: {m['nproc']} cores, {m['cpu_model']}, {m['kernel']}, {m['mem_total']}",
        f"- Load average at start: {' '.join(m['loadavg_at_start'])}"
        + (" — **smoke mode** (`BENCH_SMOKE=1`): checks that every run and target is "
           "there and that nothing failed; its timings mean nothing" if cfg.get("smoke") else ""),
        f"- Load generator: {m['oha_version']} (HTTP/1.1, keep-alive, on the same cores)"
        + (f"; {m['go_version']}" if m.get("go_version") else ""),
        f"- Each run: fresh processes, mTLS, JSON logs to files, "
        f"{cfg['worker_threads']} worker thread(s) per process (Go: GOMAXPROCS); "
        f"{cfg['warmup_s']:g} s warm-up, then {cfg['duration_s']:g} s measured. "
        + (f"{cfg['rounds']} rounds, interleaved (every run of round 1, then of round 2, ...); "
           "each figure is the median over the rounds (ratios taken within a round), "
           "RSS the largest, errors the sum." if cfg.get("rounds", 1) > 1 else "One round."),
        pairs_desc(cfg),
        "- CPU µs/request: utime+stime of each service process (/proc/PID/stat) over the "
        "measured window ÷ requests completed in it; s1 sums the replicas. RSS: VmHWM "
        "(peak) and VmRSS after the run (/proc/PID/status), largest replica for s1. "
        "oha µs/req: the load generator's own CPU. Host busy/steal: /proc/stat.",
    ]


def largest_rss(r, key, kind):
    """The largest replica's; each one is under "Per process"."""
    vals = [p[key] for p in r["processes"] if p["service"] == kind]
    return f"{max(vals):.1f}" if vals else "–"


def run_row(r):
    c, lat = r["cpu_us_per_req"], r["latency_ms"]
    return (
        f"| {r['id']} | {r['url'].split('/api/v1/')[1]} | {r['replicas']} | {load_desc(r)} "
        f"| {r['rps']:,.0f} | {fmt(lat['p50'], 3)} | {fmt(lat['p90'], 3)} | {fmt(lat['p99'], 3)} "
        f"| {fmt(lat['p99.9'], 3)} | {r['errors']} | {fmt(c['service1'], 1)} "
        f"| {fmt(c['service2'], 1)} | {fmt(c['total'], 1)} | {fmt(r.get('cpu_ratio_vs_name'))} "
        f"| {largest_rss(r, 'peak_rss_mib', 'service1')} / "
        f"{largest_rss(r, 'peak_rss_mib', 'service2')} "
        f"| {largest_rss(r, 'rss_after_mib', 'service1')} / "
        f"{largest_rss(r, 'rss_after_mib', 'service2')} "
        f"| {fmt(r['loadgen_cpu_us_per_req'], 1)} "
        f"| {fmt(r['host']['busy_pct'], 0)} / {fmt(r['host']['steal_pct'], 0)} |")


def runs_table(runs):
    out = ["", "## Runs", "",
           "| run | endpoint | s1 replicas | load | req/s | p50 ms | p90 ms | p99 ms | "
           "p99.9 ms | errors | CPU µs/req s1 | s2 | s1+s2 | ÷ name | peak RSS MiB s1 / s2 "
           "| RSS after MiB s1 / s2 | oha µs/req | host busy / steal % |",
           "|" + "---|" * 18]
    return out + [run_row(r) for r in runs]


def targets_table(doc):
    cfg = doc["settings"]
    out = ["", "## Targets", "",
           "A target whose run was not measured counts as missed. The p99 target holds in "
           "every round; its value is the worst round's.", "",
           "| target | run | measured | limit | result |", "|---|---|---|---|---|"]
    for t in doc["targets"]:
        unit = f" {t['unit']}" if t["unit"] else ""
        # Ratios to 3 digits, so a value just over its limit does not print as equal to it.
        digits = 3 if t["unit"] == "×" else 2
        value = "–" if t["value"] is None else f"{fmt(t['value'], digits)}{unit}"
        if len(t.get("rounds") or []) > 1:
            value += " (rounds: " + ", ".join(fmt(v) for v in t["rounds"]) + ")"
        result = {"PASS": "PASS", "FAIL": "**FAIL**"}.get(t["status"], "**NOT MEASURED**")
        out.append(f"| {t['target']} | {t['run']} | {value} | "
                   f"{t.get('op', '≤')} {fmt(t['limit'])}{unit} | {result} |")
    met = doc.get("all_targets_met")
    out += ["", f"All targets met: **{'yes' if met else 'no'}**."]
    if any(t.get("note") for t in doc["targets"]):
        out += ["", f"Note: non-default settings (duration {cfg['duration_s']:g} s, "
                f"{cfg['rounds']} round(s), rate {cfg['rate']} req/s); the targets are "
                "meant for the defaults."]
    return out


def compare_row(r, others, pairs):
    c = r["cpu_us_per_req"]
    cells = [r["target"], load_desc(r), fmt(c["total"], 1)]
    cells += [fmt(others[p]["cpu_us_per_req"]["total"], 1) if p in others else "–" for p in pairs]
    cells += [f"**{fmt(r['vs'][p]['cpu'])}**" if p in r["vs"] else "–" for p in pairs]
    cells += [f"{r['rps']:,.0f}"]
    cells += [f"{others[p]['rps']:,.0f}" if p in others else "–" for p in pairs]
    cells += [fmt(r["vs"][p]["rps"]) if p in r["vs"] else "–" for p in pairs]
    return "| " + " | ".join(cells) + " |"


def baseline_table(runs):
    """Each 1-replica run of ours beside the other pairs' at the same load."""
    runs_by_id = {r["id"]: r for r in runs}
    paired = [r for r in runs if r.get("vs")]
    if not paired:
        return []
    pairs = [p for p in ("baseline", "go") if any(p in r["vs"] for r in paired)]
    names = [PAIR_NAMES[p] for p in pairs]
    head = (["endpoint", "load", "CPU µs/req ours"] + names
            + [f"ours ÷ {n}" for n in names] + ["req/s ours"] + names
            + [f"req/s ours ÷ {n}" for n in names])
    rows = []
    for r in paired:
        others = {p: runs_by_id[v["run"]] for p, v in r["vs"].items()}
        rows.append(compare_row(r, others, pairs))
    return ["", "## Ours beside the other pairs", "",
            "Measured in the same run, each right after ours at the same load, 1 service1 "
            "each. CPU µs/req: both services together (name: service1 alone).", "",
            "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + rows


def process_table(runs):
    out = ["", "## Per process", "",
           "| run | process | pid | CPU s | CPU µs/req | peak RSS MiB | RSS after MiB "
           "| log lines (access) | exit |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        for p in r["processes"]:
            out.append(f"| {r['id']} | {p['process']} {p['addr']} | {p['pid']} | {p['cpu_s']:.2f} "
                       f"| {fmt(p['cpu_us_per_req'], 1)} | {p['peak_rss_mib']:.1f} "
                       f"| {p['rss_after_mib']:.1f} | {p['log_lines']:,} ({p['access_lines']:,}) "
                       f"| {p['exit_code']} |")
    return out


def markdown(doc):
    if not doc["runs"]:  # BENCH_INSTRUCTIONS_ONLY=1
        out = header(doc)[:5] + instructions_table(doc.get("instructions"))
        return "\n".join(out + ["", "Raw numbers: [results.json](results.json)."]) + "\n"
    out = (header(doc) + runs_table(doc["runs"]) + baseline_table(doc["runs"])
           + instructions_table(doc.get("instructions")) + targets_table(doc)
           + process_table(doc["runs"]))
    charts = "[latency.svg](latency.svg)"
    if any(r.get("vs") for r in doc["runs"]):
        charts += (", [baseline.svg](baseline.svg) (CPU per request of ours and the other "
                   "pairs, with both ratios)")
    out += ["", f"Charts: {charts}. Raw numbers: [results.json](results.json). "
            "Service logs: `logs/<run>/` (gzip; they include the warm-up)."]
    return "\n".join(out) + "\n"
