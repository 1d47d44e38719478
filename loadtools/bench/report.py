"""results.md: the runs, the targets and every process, as tables."""

from statistics import median

from loadtools.bench.instructions import instructions_table
from loadtools.common import fmt


def load_desc(r):
    return (f"{r['rate']:,} req/s, c{r['concurrency']}" if r["rate"]
            else f"c{r['concurrency']}")


def header(doc):
    m, cfg = doc["machine"], doc["settings"]
    return [
        f"# Benchmark {doc['timestamp']}", "",
        f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['mem_total']}, {m['kernel']}",
        f"- Commit: `{m['git_commit'][:12]}`{' (uncommitted changes)' if m['git_dirty'] else ''}"
        f"; load generator: {m['oha_version']} (HTTP/1.1, keep-alive, on the same cores)",
        f"- Each run: fresh processes, mTLS, `LOG_FORMAT=json` to files, "
        f"{cfg['worker_threads']} worker thread(s) per process; "
        f"{cfg['warmup_s']:g} s warm-up, then {cfg['duration_s']:g} s measured. "
        + (f"{cfg['rounds']} rounds, interleaved (every run of round 1, then of round 2, ...); "
           "each figure is the median over the rounds (ratios taken within a round), "
           "RSS the largest, errors the sum. " if cfg.get("rounds", 1) > 1 else "")
        + f"Load average at start: {' '.join(m['loadavg_at_start'])}",
        "- `baseline-*` runs: the straightforward tonic + axum pair (bench/baseline/), "
        "each right after ours at the same load" if cfg["baseline"] else
        "- No baseline runs (`BENCH_BASELINE=0`)",
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
    out = ["", "## Targets", "", "| target | run | measured | limit | result |",
           "|---|---|---|---|---|"]
    for t in doc["targets"]:
        unit = f" {t['unit']}" if t["unit"] else ""
        out.append(f"| {t['target']} | {t['run']} | {fmt(t['value'])}{unit} | "
                   f"{t.get('op', '≤')} {fmt(t['limit'])}{unit} | {'PASS' if t['pass'] else '**FAIL**'} |")
    if any(t.get("note") for t in doc["targets"]):
        out += ["", f"Note: non-default settings (duration {cfg['duration_s']:g} s, rate "
                f"{cfg['rate']} req/s); the targets are meant for the defaults."]
    sh = [r for r in doc["runs"] if r["target"] == "say-hello" and r.get("cpu_ratio_vs_name")
          and r["pair"] == "ours"]
    if sh:
        out += ["", f"Median say-hello ÷ name CPU/request over {len(sh)} runs: "
                f"{median(r['cpu_ratio_vs_name'] for r in sh):.2f}×."]
    return out


def baseline_row(r, twin):
    v, c, t = r["vs_baseline"], r["cpu_us_per_req"], twin["cpu_us_per_req"]
    return (f"| {r['target']} | {load_desc(r)} | {fmt(c['total'], 1)} | {fmt(t['total'], 1)} "
            f"| **{fmt(v['cpu'])}** | {r['rps']:,.0f} | {twin['rps']:,.0f} | {fmt(v['rps'])} "
            f"| {fmt(r.get('cpu_ratio_vs_name'))} | {fmt(twin.get('cpu_ratio_vs_name'))} |")


def baseline_table(runs):
    """Each 1-replica run of ours beside the baseline's at the same load."""
    by_id = {r["id"]: r for r in runs}
    paired = [r for r in runs if r.get("vs_baseline")]
    if not paired:
        return []
    return ["", "## Ours ÷ baseline", "",
            "The baseline is the straightforward tonic + axum pair (bench/baseline/), "
            "measured in the same run right after ours at the same load, 1 service1 each. "
            "CPU µs/req: both services together (name: service1 alone).", "",
            "| endpoint | load | CPU µs/req ours | baseline | ours ÷ baseline | req/s ours "
            "| baseline | ours ÷ baseline | ÷ name ours | ÷ name baseline |",
            "|" + "---|" * 10] + [baseline_row(r, by_id[r["vs_baseline"]["run"]]) for r in paired]


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
        out = header(doc)[:4] + instructions_table(doc.get("instructions"))
        return "\n".join(out + ["", "Raw numbers: [results.json](results.json)."]) + "\n"
    out = (header(doc) + runs_table(doc["runs"]) + baseline_table(doc["runs"])
           + instructions_table(doc.get("instructions")) + targets_table(doc)
           + process_table(doc["runs"]))
    charts = "[latency.svg](latency.svg)"
    if any(r.get("vs_baseline") for r in doc["runs"]):
        charts += ", [baseline.svg](baseline.svg) (ours and the baseline's CPU per request)"
    out += ["", f"Charts: {charts}. Raw numbers: [results.json](results.json). "
            "Service logs: `logs/<run>/` (gzip; they include the warm-up)."]
    return "\n".join(out) + "\n"
