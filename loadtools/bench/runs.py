"""The benchmark's runs: which topologies at which loads, and how one run
is measured (fresh processes, warm-up, a timed oha run, /proc around it)."""

import signal
import time

from loadtools.common import SetupError, fmt, logger
from loadtools.loadgen import oha_cmd, run_oha, summarize_oha
from loadtools.procfs import cpu_between, cpu_snapshot, loadavg, proc_mem_kib
from loadtools.services import SIMPLE_PAIRS, Launch, count_and_gzip, start_topology, stop_all

log = logger("bench")


def loads_of(cfg):
    """The closed-loop loads, then the fixed rate."""
    loads = [{"mode": f"c{c}", "concurrency": c, "rate": None} for c in cfg["concurrency"]]
    loads.append({"mode": f"{cfg['rate']}rps", "concurrency": cfg["rate_concurrency"],
                  "rate": cfg["rate"]})
    return loads


def spec(target, replicas, pair, load):
    prefix = "" if pair == "ours" else f"{pair}-"
    return dict(target=target, replicas=replicas, pair=pair,
                id=f"{prefix}{target}-{replicas}x-{load['mode']}", **load)


def plan(cfg):
    """name x1, then say-hello at each replica count; each at every load. Each
    1-replica run of ours is followed at once by each other pair's at the same
    load (ours, tonic + axum, Go, ours, ...), so all see the same machine."""
    runs = []
    for target, replicas in [("name", 1)] + [("say-hello", r) for r in cfg["replicas"]]:
        for load in loads_of(cfg):
            runs.append(spec(target, replicas, "ours", load))
            if replicas == 1:
                runs += [spec(target, replicas, pair, load) for pair in cfg["baselines"]]
    return runs


def oha_run(oha, url, seconds, run):
    cmd = oha_cmd(oha, url, seconds, run["concurrency"], run["rate"])
    return run_oha(cmd, seconds + 60)


def measure_window(run, services, oha, url, cfg):
    """Warm-up, then the measured oha run between two /proc readings."""
    warm = None
    if cfg["warmup_s"] > 0:
        warm = summarize_oha(oha_run(oha, url, cfg["warmup_s"], run))
    window = {"loadavg_before": loadavg(), "warm": warm}
    before = cpu_snapshot(services)
    t0 = time.monotonic()
    window["report"] = oha_run(oha, url, cfg["duration_s"], run)
    window["seconds"] = time.monotonic() - t0
    window["cpu"] = cpu_between(before, cpu_snapshot(services))
    window["mem"] = {s.label: proc_mem_kib(s.pid) for s in services}
    dead = [s.label for s in services if not s.alive()]
    if dead:
        raise SetupError(f"{run['id']}: {dead} exited during the run")
    return window


def process_rows(services, window, n):
    """One row per service process: CPU, memory, exit code, its log's lines."""
    rows = []
    for s in services:
        cpu_s = window["cpu"]["procs_s"][s.label]
        mem = window["mem"][s.label]
        p = {
            "process": s.label, "service": s.kind, "pid": s.pid, "addr": s.addr,
            "cpu_s": cpu_s,
            "cpu_us_per_req": cpu_s / n * 1e6 if n else None,
            "peak_rss_mib": mem.get("VmHWM", 0) / 1024,
            "rss_after_mib": mem.get("VmRSS", 0) / 1024,
            "exit_code": s.exit_code,
        }
        p.update(count_and_gzip(s.logfile))
        rows.append(p)
    return rows


def cpu_per_req(procs, kind):
    vals = [p["cpu_us_per_req"] for p in procs if p["service"] == kind]
    return sum(vals) if vals and None not in vals else None


def clean_exit(pair):
    """Ours drain and exit 0 on SIGTERM; the simple pairs, like the docs'
    examples, have no signal handler, so SIGTERM ends them (-15)."""
    return -signal.SIGTERM if pair in SIMPLE_PAIRS else 0


def run_result(run, url, window, procs, cfg):
    """What results.json records for one run."""
    res = summarize_oha(window["report"])
    n, cpu, warm = res["completed"], window["cpu"], window["warm"]
    out = dict(run)
    out.update(res)
    out.update({
        "url": url.split("?")[0],
        "oha_command": oha_cmd("oha", url, cfg["duration_s"], run["concurrency"], run["rate"]),
        "measured_window_s": window["seconds"],
        "processes": procs,
        "cpu_us_per_req": {"service1": cpu_per_req(procs, "service1"),
                           "service2": cpu_per_req(procs, "service2")},
        "loadgen_cpu_us_per_req": cpu["children_s"] / n * 1e6 if n else None,
        "host": {"busy_pct": cpu["busy_pct"], "steal_pct": cpu["steal_pct"],
                 "loadavg_before": window["loadavg_before"]},
        "warmup": warm and {k: warm[k] for k in ("completed", "errors", "rps")},
    })
    c = out["cpu_us_per_req"]
    c["total"] = (c["service1"] or 0) + (c["service2"] or 0) if n else None
    unclean = [p["process"] for p in procs if p["exit_code"] != clean_exit(run["pair"])]
    if unclean:
        out["note"] = f"non-zero exit after SIGTERM: {unclean}"
    return out


def measure(run, oha, certs, logroot, cfg):
    """One run on fresh processes, stopped (and their logs compressed) after it."""
    rid = run["id"]
    logdir = logroot / rid
    logdir.mkdir(parents=True)
    log(f"{rid}: starting {run['pair']}: {run['replicas']}x service1"
        + (" + service2" if run["target"] == "say-hello" else ""))
    how = Launch(run["pair"], cfg["worker_threads"])
    services, url = start_topology(run["target"], run["replicas"], certs, logdir, cfg, how)
    try:
        window = measure_window(run, services, oha, url, cfg)
    finally:
        stop_all(services)
    n = summarize_oha(window["report"])["completed"]
    out = run_result(run, url, window, process_rows(services, window, n), cfg)
    c, lat = out["cpu_us_per_req"], out["latency_ms"]
    log(f"{rid}: {out['rps']:.0f} req/s, p50 {fmt(lat['p50'])} p99 {fmt(lat['p99'])} ms, "
        f"errors {out['errors']}, CPU {fmt(c['total'], 1)} µs/req (s1 {fmt(c['service1'], 1)}"
        f", s2 {fmt(c['service2'], 1)})")
    return out
