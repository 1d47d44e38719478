"""The storm: oha's flood, slowloris, oversized headers and well-behaved
clients all at once on one set of processes, sampled every second."""

import asyncio
import time

from loadtools.common import logger, wait_all
from loadtools.loadgen import oha_cmd, run_oha_async, summarize_oha
from loadtools.procfs import Sampler, cpu_between, cpu_snapshot, loadavg
from loadtools.services import metrics_counts
from loadtools.stress.clients import GoodClient, good_stats, oversized_client, slowloris_conn

log = logger("stress")


def log_plan(cfg, seconds):
    log(f"storm: {seconds:g} s: oha -c {cfg['connections']}, {cfg['slowloris']} slowloris"
        + (f" (+{cfg['variant_conns']} silent, +{cfg['variant_conns']} h2-preface)"
           if cfg["variants"] else "")
        + f", {cfg['oversized']} oversized-header clients, {cfg['good_clients']} well-behaved "
        f"clients at {cfg['good_rate']:g} req/s")


def client_tasks(s2, cfg, deadline, good, slow, oversized):
    """A task per well-behaved client, slowloris slot and oversized-header client."""
    spawn = asyncio.create_task
    tasks = [spawn(GoodClient(i, s2, cfg, good).run(deadline)) for i in range(cfg["good_clients"])]
    kinds = [("partial-head", cfg["slowloris"])]
    if cfg["variants"]:
        kinds += [("silent", cfg["variant_conns"]), ("h2-preface", cfg["variant_conns"])]
    for kind, count in kinds:
        interval = cfg["slowloris_interval_s"] if kind == "partial-head" else 2.0
        tasks += [spawn(slowloris_conn(i, kind, s2, interval, deadline, slow))
                  for i in range(count)]
    tasks += [spawn(oversized_client(i, s2, cfg, deadline, oversized))
              for i in range(cfg["oversized"])]
    return tasks


async def flood_then_wait(flood_cmd, tasks, seconds, deadline):
    """The flood's oha report, once every client task has stopped too."""
    flood = asyncio.create_task(run_oha_async(flood_cmd, seconds + 90))
    try:
        report = await flood
        # Every client task stops at `deadline` by itself; bound the wait anyway.
        await wait_all(tasks, max(5.0, deadline - time.monotonic()) + 30)
    finally:
        for t in tasks + [flood]:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, flood, return_exceptions=True)
    return report


def cpu_seconds(cpu):
    """CPU seconds per service process, oha's, and this harness's own clients'."""
    out = dict(cpu["procs_s"])
    out["oha"] = cpu["children_s"]
    out["python clients"] = cpu["self_s"]
    return {k: round(v, 2) for k, v in out.items()}


async def storm_async(services, url, oha, cfg):
    s2, seconds = services[-1], cfg["storm_s"]
    sampler = Sampler(services, 1.0)
    sampler.sample()
    metrics_before = metrics_counts(s2)
    good, slow, oversized = good_stats(), [], {}
    cpu0 = cpu_snapshot(services)
    loadavg_before = loadavg()
    t0 = time.monotonic()
    deadline = t0 + seconds
    flood_cmd = oha_cmd(oha, url.replace("name=test", "name=flood"), seconds, cfg["connections"],
                        timeouts=True)
    log_plan(cfg, seconds)
    tasks = [asyncio.create_task(sampler.run(seconds + 2))]
    tasks += client_tasks(s2, cfg, deadline, good, slow, oversized)
    report = await flood_then_wait(flood_cmd, tasks, seconds, deadline)
    t1 = time.monotonic()
    cpu = cpu_between(cpu0, cpu_snapshot(services))
    sampler.sample()
    flood_res = summarize_oha(report)
    flood_res["oha_command"] = ["oha"] + flood_cmd[1:]
    return {
        "seconds": seconds, "wall_s": round(t1 - t0, 1), "loadavg_before": loadavg_before,
        "host_busy_pct": cpu["busy_pct"], "host_steal_pct": cpu["steal_pct"],
        "cpu_s": cpu_seconds(cpu), "flood": flood_res, "good": good, "slowloris": slow,
        "oversized": oversized, "samples": sampler.samples,
        "metrics_before": metrics_before, "metrics_after": metrics_counts(s2),
    }
