"""Gray failure at full load (issue 30): a frozen and a slow service1
replica behind service2, each on fresh processes (service1 x3 on
127.0.0.2-.4, service2 with a static:/// target of all three, every
setting at its default), under oha in a closed loop.

1. Frozen: oha for a warm-up, then one replica is SIGSTOPped for
   STRESS_GRAY_FREEZE_SECONDS (its sockets stay open, the kernel still
   ACKs: connected but not answering), then SIGCONTed, and oha goes on for
   STRESS_GRAY_SECONDS. Three consecutive oha runs (before, frozen, after),
   so each window has its own percentiles. service2's /metrics is read
   every 0.25 s: when it ejected the replica, when it took it back.
2. Slow: the third replica is reached through a relay (relay.py) that,
   once the warm-up is over, holds every chunk from the replica to service2
   for STRESS_GRAY_SLOW_MS (200 ms). TLS passes through untouched and the
   handshake was made before the delay began. oha for a warm-up (healthy,
   the control), then STRESS_GRAY_SECONDS with the slow replica: how many
   calls it got (service2's `service1_calls_total{endpoint}`), p50/p99.

Bounded: every oha run has a timeout, the metrics poller stops with the
phase, and the frozen replica is SIGCONTed in every case (also by the
caller before it stops the processes).
"""

import asyncio
import json
import os
import signal
import time

from loadtools.common import SetupError, logger
from loadtools.loadgen import oha_cmd, run_oha_async, summarize_oha
from loadtools.services import (Launch, free_port, http_get, launch, start_service1, stop_all,
                                tls_env, wait_ready)
from loadtools.stress.limits import GRAY_REPLICAS, GRAY_WARMUP_S, RELAY_ADDR
from loadtools.stress.relay import Relay

log = logger("stress")

POLL_S = 0.25  # how often service2's /metrics is read


# ------------------------------------------------------------- processes


def start(certs, logdir, cfg, keep, slow):
    """service1 x3 and service2, with a relay in front of the last replica
    when `slow`; (services, url, relay). The relay goes into `keep` before
    it starts, so the caller stops it in every case."""
    logdir.mkdir(parents=True)
    log(f"gray ({'slow' if slow else 'frozen'} replica): starting service1 x{GRAY_REPLICAS} + "
        f"service2" + (" (the third replica behind a relay)" if slow else ""))
    how = Launch()
    taken = set()
    addrs = [f"127.0.0.{2 + i}" for i in range(GRAY_REPLICAS)]
    grpc_port = free_port(addrs, taken)
    targets = [f"{a}:{grpc_port}" for a in addrs]
    relay = None
    services = []
    try:
        if slow:
            relay_port = free_port([RELAY_ADDR], taken)
            relay = Relay(RELAY_ADDR, relay_port, (addrs[-1], grpc_port))
            keep.append(relay)
            relay.start()
            targets[-1] = f"{RELAY_ADDR}:{relay_port}"
        for i, addr in enumerate(addrs):
            services.append(start_service1(i, addr, grpc_port, taken, certs, logdir, how))
        services.append(start_service2(targets, taken, certs, logdir, how))
        s2 = services[-1]
        url = f"http://{s2.addr}:{s2.port}/api/v1/say-hello?name=gray"
        wait_ready(services, GRAY_REPLICAS, cfg["ready_timeout_s"])
        code, body = http_get(url, timeout=5.0)
        if code != 200:
            raise SetupError(f"smoke request {url} answered {code}: {body[:200]!r}")
        return services, url, relay, targets
    except BaseException:
        stop_all(services)
        raise


def start_service2(targets, taken, certs, logdir, how):
    """service2 on 127.0.0.1, `SERVICE1_CHANNEL=static:///` of `targets`."""
    addr = "127.0.0.1"
    port = free_port([addr], taken)
    admin = free_port([addr], taken)
    env = {"BIND_ADDR": addr, "PORT": str(port), "ADMIN_PORT": str(admin),
           "TLS_SERVER_NAME": "service1", "SERVICE1_CHANNEL": "static:///" + ",".join(targets),
           **tls_env(certs, "service2")}
    return launch("service2", "service2", how, env, addr, port, admin, logdir / "service2.log")


def signal_process(s, sig):
    """Send `sig` to a service process if it is still there."""
    if s.alive():
        try:
            os.kill(s.pid, sig)
        except ProcessLookupError:
            pass


def resume_all(services):
    """SIGCONT to every process (a no-op on one that is not stopped)."""
    for s in services:
        signal_process(s, signal.SIGCONT)


# ------------------------------------------------------------ service2's log

EVENT_PREFIXES = ("service1 replica", "connected to service1", "connection to service1",
                  "cannot connect to service1")
MAX_EVENTS = 40


def replica_events(logfile):
    """service2's log lines about its replicas (connections, ejections,
    probation), the first MAX_EVENTS of them, and how many there were of each."""
    events, counts = [], {}
    try:
        with open(logfile, "rb") as f:
            for raw in f:
                if b"service1" not in raw:
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                msg = str(line.get("message", ""))
                if not msg.startswith(EVENT_PREFIXES):
                    continue
                key = msg.split(":")[0].split(";")[0]
                counts[key] = counts.get(key, 0) + 1
                if len(events) < MAX_EVENTS:
                    events.append({k: line.get(k) for k in ("timestamp", "message", "endpoint",
                                                            "reason", "ejected_for_ms",
                                                            "ejections_in_a_row", "error")
                                   if line.get(k) is not None})
    except OSError:
        pass
    return {"counts": counts, "first": events}


# ---------------------------------------------------------------- metrics


def service1_metrics(s2):
    """Every `service1_*` series on service2's /metrics, {series: value}, or None."""
    try:
        code, body = http_get(f"http://{s2.addr}:{s2.admin_port}/metrics", timeout=2.0)
    except OSError:
        return None
    if code != 200:
        return None
    out = {}
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("service1_"):
            series, _, value = line.rpartition(" ")
            try:
                out[series] = float(value)
            except ValueError:
                pass
    return out


def total(m, prefix):
    """Sum of the series of one family (`name` or `name{...}`)."""
    if not m:
        return 0.0
    return sum(v for k, v in m.items() if k == prefix or k.startswith(prefix + "{"))


def calls_by_endpoint(m):
    """{endpoint: attempts} from `service1_calls_total{endpoint="…"}`."""
    out = {}
    for k, v in (m or {}).items():
        if k.startswith("service1_calls_total{"):
            out[k.split('endpoint="')[1].split('"')[0]] = v
    return out


def calls_between(samples, t_from, t_to):
    """Attempts per endpoint between the last reading at or before `t_from`
    and the last at or before `t_to` (None without two such readings)."""
    if t_to is None:
        return None
    first = [r for r in samples if r["t"] <= t_from]
    last = [r for r in samples if r["t"] <= t_to]
    if not first or not last or last[-1] is first[-1]:
        return None
    return delta(calls_by_endpoint(last[-1]["m"]), calls_by_endpoint(first[-1]["m"]))


def delta(after, before):
    return {k: int(v - (before or {}).get(k, 0.0)) for k, v in (after or {}).items()}


class Poller:
    """Reads service2's service1_* metrics every POLL_S seconds (asyncio task)."""

    def __init__(self, s2, t0):
        self.s2, self.t0 = s2, t0
        self.samples = []  # {"t": s since t0, "m": {series: value}}

    async def run(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = await asyncio.to_thread(service1_metrics, self.s2)
            if m is not None:
                self.samples.append({"t": round(time.monotonic() - self.t0, 2), "m": m})
            await asyncio.sleep(POLL_S)

    def first(self, after_t, pred):
        """Time of the first sample at or after `after_t` for which pred(m) holds."""
        for r in self.samples:
            if r["t"] >= after_t and pred(r["m"]):
                return r["t"]
        return None


async def load(oha, url, seconds, cfg, t0, window):
    """One closed-loop oha run; its figures, and when it ran (s since t0)."""
    cmd = oha_cmd(oha, url, seconds, cfg["gray_connections"], timeouts=True)
    start_s = time.monotonic() - t0
    report = await run_oha_async(cmd, seconds + 90)
    res = summarize_oha(report)
    res.update({"window": window, "seconds": seconds, "start_s": round(start_s, 2),
                "end_s": round(time.monotonic() - t0, 2), "oha_command": ["oha"] + cmd[1:]})
    log(f"gray: {window}: {res['completed']:,} requests, {res['errors']} errors, p99 "
        f"{res['latency_ms']['p99']:.1f} ms, longest {res['latency_ms']['max']:.0f} ms")
    return res


async def with_poller(poller, seconds, body):
    """Runs `body` (a coroutine) while `poller` samples; stops the poller in every case."""
    task = asyncio.create_task(poller.run(seconds))
    try:
        return await body
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ------------------------------------------------------------------ frozen


async def frozen(services, url, oha, cfg):
    """Warm-up, SIGSTOP one replica for the freeze, SIGCONT, go on."""
    s2, victim = services[-1], services[0]
    t0 = time.monotonic()
    poller = Poller(s2, t0)
    before = service1_metrics(s2)
    marks = {}

    async def windows():
        out = [await load(oha, url, GRAY_WARMUP_S, cfg, t0, "before")]
        log(f"gray: SIGSTOP {victim.label} (pid {victim.pid}) for {cfg['gray_freeze_s']:g} s")
        marks["stopped_s"] = time.monotonic() - t0
        marks["stopped_unix"] = time.time()
        signal_process(victim, signal.SIGSTOP)
        resume = asyncio.create_task(resume_at(victim, t0 + marks["stopped_s"]
                                               + cfg["gray_freeze_s"], marks, t0))
        try:
            out.append(await load(oha, url, cfg["gray_freeze_s"], cfg, t0, "frozen"))
            await resume
        finally:
            if not resume.done():
                resume.cancel()
            signal_process(victim, signal.SIGCONT)
        out.append(await load(oha, url, cfg["gray_s"], cfg, t0, "after"))
        return out

    seconds = GRAY_WARMUP_S + cfg["gray_freeze_s"] + cfg["gray_s"] + 300
    try:
        runs = await with_poller(poller, seconds, windows())
    finally:
        signal_process(victim, signal.SIGCONT)
    after = service1_metrics(s2)
    return frozen_figures(runs, poller, before, after, marks, victim, cfg)


async def resume_at(victim, when, marks, t0):
    await asyncio.sleep(max(0.0, when - time.monotonic()))
    signal_process(victim, signal.SIGCONT)
    marks["resumed_s"] = time.monotonic() - t0
    log(f"gray: SIGCONT {victim.label}")


def frozen_figures(runs, poller, before, after, marks, victim, cfg):
    stopped, resumed = marks["stopped_s"], marks.get("resumed_s")
    ej0 = total(before, "service1_ejections_total")
    ret0 = total(before, "service1_ejection_returns_total")
    ejected_at = poller.first(stopped, lambda m: total(m, "service1_ejections_total") > ej0)
    # The return counted after the replica was resumed (the counter as it
    # stood at SIGCONT is the baseline).
    at_resume = [r["m"] for r in poller.samples if resumed is not None and r["t"] <= resumed]
    ret_base = total(at_resume[-1], "service1_ejection_returns_total") if at_resume else ret0
    returned_at = (poller.first(resumed, lambda m: total(m, "service1_ejection_returns_total")
                                > ret_base) if resumed is not None else None)
    ready = [total(r["m"], "service1_endpoints_ready") for r in poller.samples
             if r["t"] >= stopped and (resumed is None or r["t"] <= resumed)]
    victim_endpoint = f"{victim.addr}:"
    samples = poller.samples
    calls = {r["window"]: calls_between(samples, r["start_s"], r["end_s"]) for r in runs}
    # From the last reading before SIGSTOP: the calls in flight then count.
    calls["while frozen"] = calls_between(samples, stopped, resumed)
    metrics_delta = {k: v for k, v in delta(after, before).items()
                     if not k.startswith("service1_endpoints_") and v}
    return {
        "freeze_s": cfg["gray_freeze_s"], "victim": victim.label, "victim_pid": victim.pid,
        "victim_endpoint_prefix": victim_endpoint,
        "stopped_s": round(stopped, 2), "stopped_unix": marks["stopped_unix"],
        "resumed_s": round(resumed, 2) if resumed is not None else None,
        "windows": runs,
        "requests": sum(r["completed"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "longest_ms": max(r["latency_ms"]["max"] for r in runs),
        "ejected_after_stop_s": None if ejected_at is None else round(ejected_at - stopped, 2),
        "returned_after_resume_s": (None if returned_at is None or resumed is None
                                    else round(returned_at - resumed, 2)),
        "ready_min_while_frozen": min(ready) if ready else None,
        "metrics_delta": metrics_delta,
        "calls_by_window": calls,
        "metrics_samples": samples,
    }


# -------------------------------------------------------------------- slow


async def slow(services, url, oha, cfg, relay, slow_target):
    """A healthy warm-up (the control), then the relay's delay on."""
    s2 = services[-1]
    t0 = time.monotonic()
    poller = Poller(s2, t0)
    delay_s = cfg["gray_slow_ms"] / 1000.0

    async def windows():
        m0 = await asyncio.to_thread(service1_metrics, s2)
        healthy = await load(oha, url, GRAY_WARMUP_S, cfg, t0, "healthy")
        m1 = await asyncio.to_thread(service1_metrics, s2)
        log(f"gray: the relay now holds every answer of {services[-2].label} for "
            f"{cfg['gray_slow_ms']:g} ms")
        relay.slow_down(delay_s)
        slowed = await load(oha, url, cfg["gray_s"], cfg, t0, "slow")
        m2 = await asyncio.to_thread(service1_metrics, s2)
        return [healthy, slowed], [m0, m1, m2]

    runs, ms = await with_poller(poller, GRAY_WARMUP_S + cfg["gray_s"] + 300, windows())
    shares = []
    for a, b in ((ms[0], ms[1]), (ms[1], ms[2])):
        d = delta(calls_by_endpoint(b), calls_by_endpoint(a))
        n = sum(d.values())
        shares.append({"calls": d, "total": n, "slow": d.get(slow_target, 0),
                       "slow_pct": 100.0 * d.get(slow_target, 0) / n if n else None})
    for r, s in zip(runs, shares):
        r["calls"] = s
    return {
        "delay_ms": cfg["gray_slow_ms"], "slow_replica": services[-2].label,
        "slow_target": slow_target, "windows": runs,
        "metrics_delta": {k: v for k, v in delta(ms[2], ms[1]).items()
                          if not k.startswith("service1_endpoints_") and v},
        "relay": dict(relay.stats),
        "metrics_samples": poller.samples,
    }
