"""Where a request's CPU goes: `make profile` (python3 -m loadtools.profile).

For `name` (service1 alone) and `say-hello` (service1 + service2), ours and
the baseline pair of bench/baseline/, each on fresh release processes with
one worker thread, as `make bench` runs them:

1. warm-up at concurrency PROFILE_CONCURRENCY (default 10);
2. `perf record -e cpu-clock -g` on the service processes while oha runs
   PROFILE_SECONDS (default 10) at that concurrency: the share of samples in
   the kernel and in user space per process, and the top user-space and
   kernel symbols (self time);
3. `strace -c -f` on each process during a second oha run of the same
   length: system calls per request, by call. strace slows the processes a
   lot, so only its counts mean anything, not its times.

Writes results/profile-<UTC time>/profile.md (and the raw perf and strace
output beside it) and prints it. perf needs kernel.perf_event_paranoid <= 1
or root; on a VM without hardware counters cpu-clock sampling still works.
Python 3 standard library only; every process started is stopped; every wait
is bounded.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from loadtools.common import REPO, SetupError, logger, run_bounded, run_main, stop_on_signals, utc_stamp
from loadtools.knobs import env_int, env_seconds
from loadtools.loadgen import ensure_oha, oha_cmd, run_oha, summarize_oha
from loadtools.services import Launch, start_topology, stop_all
from loadtools.toolchain import build, build_baseline, make_certs

log = logger("profile")
TOP = 12


def settings():
    return {
        "seconds": env_seconds("PROFILE_SECONDS", 10.0, lo=1.0, hi=600.0),
        "warmup_s": env_seconds("PROFILE_WARMUP", 2.0, lo=0.0, hi=600.0),
        "concurrency": env_int("PROFILE_CONCURRENCY", 10, 1, 1000),
        "baseline": os.environ.get("PROFILE_BASELINE", "1") != "0",
        "results_dir": Path(os.environ.get("BENCH_RESULTS_DIR", str(REPO / "results"))),
        "cargo": os.environ.get("CARGO", "cargo"),
        "oha": os.environ.get("OHA", ""),
        # What start_topology needs.
        "name": "test",
        "ready_timeout_s": 30.0,
    }


def check_tools():
    for tool in ("perf", "strace"):
        if shutil.which(tool) is None:
            raise SetupError(f"no {tool} on PATH (Debian: apt-get install linux-perf strace)")


def load(oha, url, cfg):
    report = run_oha(oha_cmd(oha, url, cfg["seconds"], cfg["concurrency"]), cfg["seconds"] + 60)
    return summarize_oha(report)["completed"]


def perf_record(services, oha, url, out, cfg):
    """perf samples of each service process (one perf each) while oha runs;
    ({label: perf.data}, requests)."""
    records = []
    for s in services:
        data = out / f"perf-{s.label}.data"
        records.append((s.label, data, subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-p", str(s.pid),
             "-o", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    try:
        time.sleep(0.5)  # perf attaches to every thread; no signal says when it has
        n = load(oha, url, cfg)
    finally:
        stop_tracers([p for _, _, p in records])
    return {label: data for label, data, _ in records}, n


def stop_tracers(procs):
    """SIGINT ends perf record and strace -c, which then write their output."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(2)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def where_time_goes(data):
    """[(percent, "[k] symbol" or "[.] symbol")] of one process's samples."""
    code, text, _ = run_bounded(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                                 "-g", "none", "--percent-limit", "0", "--sort", "sym"],
                                120, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if code != 0:
        raise SetupError(f"perf report -i {data} failed (exit {code})")
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\[[k.]\] .*)$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2).strip()))
    return rows


def strace_counts(services, oha, url, out, cfg):
    """System calls per request of each process, by call."""
    tracers = []
    for s in services:
        path = out / f"strace-{s.label}.txt"
        tracers.append((s, path, subprocess.Popen(
            ["strace", "-c", "-f", "-q", "-o", str(path), "-p", str(s.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    try:
        time.sleep(0.5)  # as with perf: attaching has no signal
        n = load(oha, url, cfg)
    finally:
        stop_tracers([t for _, _, t in tracers])
    calls = {}
    for s, path, _ in tracers:
        counts = Counter()
        for line in path.read_text(errors="replace").splitlines():
            cols = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(cols) >= 5 and re.fullmatch(r"[0-9.]+", cols[0]) and cols[-1] != "total":
                counts[cols[-1]] += int(cols[3])
        calls[s.label] = counts
    return calls, n


def section(title, samples, calls, n_perf, n_strace):
    lines = ["", f"## {title}", "",
             f"perf: {n_perf:,} requests; strace: {n_strace:,} requests.", "",
             "| process | kernel % of its samples | user % | syscalls / request | top syscalls / request |",
             "|---|---|---|---|---|"]
    for label in sorted(samples):
        rows = samples[label]
        total = sum(p for p, _ in rows) or 1
        kernel = sum(p for p, sym in rows if sym.startswith("[k]"))
        c = calls.get(label, Counter())
        per = sum(c.values()) / n_strace if n_strace else 0
        top = ", ".join(f"{k} {v / n_strace:.2f}" for k, v in c.most_common(6)) if n_strace else ""
        lines.append(f"| {label} | {100 * kernel / total:.0f} | {100 * (total - kernel) / total:.0f} "
                     f"| {per:.2f} | {top} |")
    for label in sorted(samples):
        rows = samples[label]
        total = sum(p for p, _ in rows) or 1
        lines += ["", f"Top symbols of {label} (self time, % of the process's samples):", ""]
        for kind, mark in (("user space", "[.]"), ("kernel", "[k]")):
            top = sorted(((p, sym) for p, sym in rows if sym.startswith(mark)), reverse=True)[:TOP]
            lines.append(f"- {kind}: " + "; ".join(f"`{sym[4:]}` {100 * p / total:.1f}" for p, sym in top))
    return lines


def profile_one(target, pair, oha, certs, out, cfg):
    title = f"{'baseline ' if pair == 'baseline' else ''}{target}"
    log(f"{title}: starting")
    workdir = out / title.replace(" ", "-")
    workdir.mkdir()
    services, url = start_topology(target, 1, certs, workdir, cfg, Launch(pair, 1))
    try:
        if cfg["warmup_s"]:
            run_oha(oha_cmd(oha, url, cfg["warmup_s"], cfg["concurrency"]), cfg["warmup_s"] + 60)
        data, n_perf = perf_record(services, oha, url, workdir, cfg)
        calls, n_strace = strace_counts(services, oha, url, workdir, cfg)
    finally:
        stop_all(services)
    samples = {label: where_time_goes(path) for label, path in data.items()}
    return section(f"{title}, c{cfg['concurrency']}", samples, calls, n_perf, n_strace)


def main():
    stop_on_signals()
    cfg = settings()
    check_tools()
    build(cfg)
    if cfg["baseline"]:
        build_baseline(cfg)
    oha, _ = ensure_oha(cfg)
    out = cfg["results_dir"] / f"profile-{utc_stamp()}"
    out.mkdir(parents=True)
    certs = Path(tempfile.mkdtemp(prefix="profile-certs-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    lines = [f"# Profile {out.name}", "",
             f"Commit {commit}; release builds, mTLS, JSON logs to files, 1 worker thread per process; "
             f"oha at concurrency {cfg['concurrency']} for {cfg['seconds']:g} s under perf "
             "(cpu-clock, call graphs), then as long under strace -c -f."]
    try:
        make_certs(certs)
        for target in ("name", "say-hello"):
            for pair in ("ours", "baseline") if cfg["baseline"] else ("ours",):
                lines += profile_one(target, pair, oha, certs, out, cfg)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    md = "\n".join(lines) + "\n"
    (out / "profile.md").write_text(md)
    print(md)
    log(f"written: {out / 'profile.md'}")
    return 0


if __name__ == "__main__":
    run_main(main, log)
