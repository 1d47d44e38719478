"""The soak, on fresh processes: oha at a moderate fixed rate for a long
time, RSS sampled throughout."""

import asyncio
import time

from loadtools.common import logger
from loadtools.loadgen import oha_cmd, run_oha_async, summarize_oha
from loadtools.procfs import Sampler
from loadtools.services import metrics_counts

log = logger("stress")


async def soak_async(services, url, oha, cfg):
    sampler = Sampler(services, cfg["soak_sample_s"])
    before = sampler.sample()
    cmd = oha_cmd(oha, url, cfg["soak_s"], cfg["soak_concurrency"], cfg["soak_rate"],
                  timeouts=True)
    log(f"soak: {cfg['soak_s']:g} s at {cfg['soak_rate']} req/s over {cfg['soak_concurrency']} "
        f"connections (RSS every {cfg['soak_sample_s']:g} s, warm-up {cfg['soak_warmup_s']:g} s)")
    sampler.samples.clear()
    sampler.t0 = time.monotonic()
    task = asyncio.create_task(sampler.run(cfg["soak_s"] + 120))
    try:
        report = await run_oha_async(cmd, cfg["soak_s"] + 90)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    sampler.sample()  # the end, right after the load
    res = summarize_oha(report)
    res["oha_command"] = ["oha"] + cmd[1:]
    return {"before_load": before, "samples": sampler.samples, "load": res,
            "metrics_after": metrics_counts(services[-1])}
