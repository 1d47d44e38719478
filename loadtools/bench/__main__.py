"""Load benchmark of service1 and service2, as shipped: `make bench`.

Builds the release binaries (ours, the tonic + axum pair of bench/baseline/,
and the Go pair of bench/baseline-go/ with the Go toolchain),
makes throw-away certificates, installs the load generator (oha) when
missing, then for each run starts fresh service processes on loopback (mTLS
on, JSON logs to files), waits until they are ready, warms up, measures a
fixed-duration oha run, and reads each service process's CPU time and memory
from /proc around the measured window. Each 1-replica run of ours is followed
by the other pairs' at the same load. The whole plan runs BENCH_ROUNDS times
(default 3), rounds interleaved, and each figure is the median over them.
With BENCH_INSTRUCTIONS=1 it then counts instructions per request under
callgrind; BENCH_INSTRUCTIONS_ONLY=1 counts them alone, with no timed runs
and no targets (a quick check of a change).

Writes results/bench-<UTC timestamp>/{results.json,results.md,latency.svg,
baseline.svg,logs/} and points results/latest at it. See bench/README.md.

Python 3 standard library only. Every process it starts is stopped before it
exits (SIGTERM, then SIGKILL after a bounded wait); every wait is bounded.

BENCH_SMOKE=1 (CI) runs every run once for 1 s and fails when a run, a
target's measurement or a log line is missing, or a request failed; it
asserts no timing.

Exit status: 0 done; 1 a target missed and BENCH_STRICT=1, or the smoke
failed; 2 setup failed
(build, load generator, a service that does not start); 130 interrupted.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from loadtools.bench import instructions, rounds, smoke, targets
from loadtools.bench.baseline_chart import baseline_chart
from loadtools.bench.chart import svg_chart
from loadtools.bench.report import markdown
from loadtools.bench.runs import measure, plan
from loadtools.bench.settings import settings
from loadtools.common import fmt, logger, run_main, settings_doc, stop_on_signals, utc_stamp
from loadtools.loadgen import ensure_oha
from loadtools.procfs import loadavg
from loadtools.toolchain import build, build_baseline, build_go, go_version, machine_info, make_certs

log = logger("bench")


def run_all(cfg, oha, outdir):
    """Every planned run, each on fresh processes, with throw-away certificates,
    BENCH_ROUNDS times over; then, with BENCH_INSTRUCTIONS=1, the instruction
    counts. ([runs of each round], counts)"""
    certs = Path(tempfile.mkdtemp(prefix="bench-certs-"))
    done, counts = [], None
    try:
        make_certs(certs)
        todo, n = ([] if cfg["instructions_only"] else plan(cfg)), cfg["rounds"]
        per_run = cfg["warmup_s"] + cfg["duration_s"]
        if todo:
            log(f"{n} round(s) of {len(todo)} runs of {cfg['warmup_s']:g}+{cfg['duration_s']:g} s "
                f"(about {n * len(todo) * (per_run + 2):.0f} s); results in {outdir}")
            for i in range(1, n + 1):
                done.append([measure({**run, "round": i, "id": rounds.round_id(run["id"], i, n)},
                                     oha, certs, outdir / "logs", cfg) for run in todo])
        if cfg["instructions"]:
            counts = instructions.measure_all(oha, certs, outdir / "logs", cfg)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    return done, counts


def point_latest(results_dir, outdir):
    link = results_dir / "latest"
    tmp = results_dir / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(outdir.name, tmp)
    os.replace(tmp, link)


def write_results(doc, outdir, started):
    """results.md, latency.svg and results.json; returns the markdown."""
    md = markdown(doc)
    (outdir / "results.md").write_text(md)
    m = doc["machine"]
    title = f"make bench {doc['timestamp']} ({m['nproc']} CPUs, {m['oha_version']})"
    if doc["runs"]:
        (outdir / "latency.svg").write_text(svg_chart(doc["runs"], title))
    compared = baseline_chart(doc["runs"], title)
    if compared:
        (outdir / "baseline.svg").write_text(compared)
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    (outdir / "results.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return md


def report_missed(doc, outdir):
    missed = [t for t in doc["targets"] if not t["pass"]]
    for t in missed:
        what = "not measured" if t["status"] == targets.NOT_MEASURED else "missed"
        print(f"bench: target {what}: {t['target']} [{t['run']}]: {fmt(t['value'])} "
              f"(limit {t.get('op', '≤')} {fmt(t['limit'])} {t['unit']})".rstrip(),
              file=sys.stderr)
    log(f"done in {doc['elapsed_s']:.0f} s ({doc['build_and_tools_s']:.0f} s of it build and "
        f"tools): {outdir} (results/latest)")
    return missed


def prepare(cfg):
    """The release builds (ours, and each other pair in BENCH_BASELINES) and oha."""
    build(cfg)
    if cfg["baseline"]:
        build_baseline(cfg)
    if "go" in cfg["baselines"] and not cfg["instructions_only"]:
        build_go(cfg)
    if cfg["instructions"]:
        instructions.check_tools()
    return ensure_oha(cfg)


def main():
    stop_on_signals()
    started = time.monotonic()
    cfg = settings()
    oha, oha_version = prepare(cfg)
    prepared = time.monotonic()
    if cfg["prepare_only"]:
        log(f"prepared in {prepared - started:.0f} s (BENCH_PREPARE_ONLY=1: builds and "
            f"{oha_version}; nothing measured)")
        return 0
    stamp = utc_stamp()
    outdir = cfg["results_dir"] / f"bench-{stamp}"
    outdir.mkdir(parents=True, exist_ok=False)
    (outdir / "logs").mkdir()
    machine = machine_info(oha_version)
    if "go" in cfg["baselines"]:
        machine["go_version"] = go_version(cfg)
    each_round, counts = run_all(cfg, oha, outdir)
    runs, every = rounds.combine(each_round or [[]])
    # Instructions alone have no target: they compare two commits.
    checked = targets.check_targets(runs, cfg) if runs else []
    doc = {
        "timestamp": stamp,
        "settings": settings_doc(cfg, ("cargo", "oha", "go")),
        "machine": machine,
        "targets_definition": targets.DEFINITION,
        "runs": runs,
        "round_runs": every if cfg["rounds"] > 1 else None,
        "instructions": counts,
        "targets": checked,
        "all_targets_met": all(t["pass"] for t in checked) if checked else None,
        "elapsed_s": None,
        "build_and_tools_s": round(prepared - started, 1),
    }
    doc["machine"]["loadavg_at_end"] = loadavg()
    md = write_results(doc, outdir, started)
    point_latest(cfg["results_dir"], outdir)
    print(md)
    missed = report_missed(doc, outdir)
    if cfg["smoke"]:
        planned = [] if cfg["instructions_only"] else [r["id"] for r in plan(cfg)]
        failed = smoke.problems(doc, planned)
        for line in failed:
            print(f"bench: smoke: {line}", file=sys.stderr)
        log(f"smoke: {'FAILED, ' + str(len(failed)) + ' problem(s)' if failed else 'passed'} "
            f"({len(doc['runs'])} runs, {len(doc['targets'])} target rows; no timing asserted)")
        if failed:
            return 1
    return 1 if missed and cfg["strict"] else 0


if __name__ == "__main__":
    run_main(main, log)
