"""The resource-exhaustion phase of `make stress` (issue 13): HTTP/2 shapes
that cost a client almost nothing and used to cost a pod its memory or its
probes (HTTP/2 spoken by hand: h2.py).

Groups, all at once for STRESS_EXHAUST_SECONDS, on fresh processes:
- idle h2: connections to service2's REST port that make one request and
  then only PING; the server must close each within HTTP_IDLE_TIMEOUT;
- Watch streams: as many grpc.health.v1.Health/Watch streams as the admin
  ports will take, on every process; at most HEALTH_MAX_WATCHES stay open;
- held health calls: Health/Check calls on every admin port whose message
  never comes, every stream of every connection, reopened as they end;
- probes, as the kubelet makes them (a new connection, a 1 s timeout):
  /livez, /readyz and a gRPC Health/Check on every admin port, and a
  say-hello through service2, every second;
then SIGTERM while the Watch streams are still open: each process must
exit 0 long before SHUTDOWN_GRACE.
"""

import asyncio
import signal
import time

from loadtools.common import logger
from loadtools.procfs import Sampler
from loadtools.stress.h2 import CHECK, EMPTY_GRPC_MESSAGE, H2, WATCH
from loadtools.stress.http1 import http1_get

log = logger("stress")


# ---------------------------------------------------------------- idle h2


async def wait_served(conn, sid):
    """Until the stream has ended or the connection closed (bounded)."""
    for _ in range(1000):
        if conn.streams[sid].ended or conn.closed.is_set():
            break
        await conn.wait_change(1.0)


async def ping_until_closed(conn, deadline):
    """A PING every 5 s until the server closes the connection or `deadline`."""
    for _ in range(100_000):
        if conn.closed.is_set() or time.monotonic() >= deadline:
            break
        conn.ping()
        try:
            await asyncio.wait_for(conn.closed.wait(), 5.0)
        except asyncio.TimeoutError:
            pass


async def idle_h2(i, s2, deadline, results):
    """One request, then PINGs every 5 s until the server closes the connection."""
    await asyncio.sleep(0.002 * i)
    rec = {"served": False, "closed_after_s": None, "goaway": False, "error": None}
    results.append(rec)
    conn = H2(s2.addr, s2.port)
    try:
        await conn.open()
        sid = conn.request("GET", "/api/v1/say-hello?name=idle")
        await wait_served(conn, sid)
        rec["served"] = bool(conn.streams[sid].status_200)
        served_at = time.monotonic()
        await ping_until_closed(conn, deadline)
        if conn.closed.is_set():
            rec["closed_after_s"] = round(time.monotonic() - served_at, 2)
        rec["goaway"] = conn.goaway
    except (OSError, asyncio.TimeoutError) as e:
        rec["error"] = type(e).__name__
    finally:
        await conn.close()


# ------------------------------------------------------------ Watch streams


async def watches(service, wanted, stop, results, conns):
    """Opens up to `wanted` Watch streams on `service`'s admin port, as many per
    connection as the server allows, and keeps them open until `stop`."""
    opened = 0
    for _ in range(10_000):
        if opened >= wanted or stop.is_set():
            break
        conn = H2(service.addr, service.admin_port)
        try:
            await conn.open()
        except (OSError, asyncio.TimeoutError) as e:
            results["connect_failed"] = results.get("connect_failed", 0) + 1
            results["last_error"] = type(e).__name__
            await asyncio.sleep(0.5)
            continue
        conns.append(conn)
        for _ in range(min(conn.max_streams or 100, wanted - opened)):
            conn.request("POST", WATCH, grpc=True, message=EMPTY_GRPC_MESSAGE)
            opened += 1
    results["attempted"] = opened


def watch_counts(conns):
    watching = refused = other = 0
    for conn in conns:
        for s in conn.streams.values():
            if s.data and not s.ended:
                watching += 1
            elif s.ended and not s.data:
                refused += 1
            else:
                other += 1
    return {"watching": watching, "refused": refused, "unanswered_or_ended": other}


# ------------------------------------------------------- held health calls


async def open_conns(service, wanted, results, conns):
    """Up to `wanted` connections to the admin port, added to `conns` as they open."""
    for _ in range(wanted):
        conn = H2(service.addr, service.admin_port)
        try:
            await conn.open()
        except (OSError, asyncio.TimeoutError):
            results["connect_failed"] = results.get("connect_failed", 0) + 1
            continue
        conns.append(conn)


def hold_every_stream(conns, results):
    """A never-ending Check call on every free stream; how many are held now."""
    held = 0
    for conn in conns:
        if conn.closed.is_set():
            continue
        for _ in range((conn.max_streams or 16) - conn.open_streams()):
            conn.request("POST", CHECK, grpc=True, end=False)
            results["opened"] = results.get("opened", 0) + 1
        held += conn.open_streams()
    return held


async def held_checks(service, conns_wanted, deadline, results):
    """Check calls whose message never comes, on every stream the admin port
    allows per connection, each reopened when the server ends it."""
    conns = []
    try:
        await open_conns(service, conns_wanted, results, conns)
        for _ in range(1_000_000):
            if time.monotonic() >= deadline:
                break
            held = hold_every_stream(conns, results)
            results["peak_held"] = max(results.get("peak_held", 0), held)
            await asyncio.sleep(0.5)
        for conn in conns:
            for s in conn.streams.values():
                key = "ended (504 or reset)" if s.ended else "still held at the end"
                results[key] = results.get(key, 0) + 1
    finally:
        results["connections"] = len(conns)
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


# ------------------------------------------------------------------ probes


async def grpc_check(service, timeout):
    conn = H2(service.addr, service.admin_port)
    try:
        await asyncio.wait_for(conn.open(), timeout)
        sid = conn.request("POST", CHECK, grpc=True, message=EMPTY_GRPC_MESSAGE)
        end = time.monotonic() + timeout
        while not conn.streams[sid].ended and not conn.closed.is_set() and time.monotonic() < end:
            await conn.wait_change(end - time.monotonic())
        s = conn.streams[sid]
        # A SERVING answer is a message (DATA); a refusal is headers alone.
        return "SERVING" if s.ended and s.data and s.status_200 else ("timeout" if not s.ended else "no message")
    except (OSError, asyncio.TimeoutError) as e:
        return type(e).__name__
    finally:
        await conn.close()


def probe_jobs(services, s2):
    jobs = []
    for s in services:
        jobs += [(s.label, "/livez", http1_get(s.addr, s.admin_port, "/livez", 1.0)),
                 (s.label, "/readyz", http1_get(s.addr, s.admin_port, "/readyz", 1.0)),
                 (s.label, "grpc Check", grpc_check(s, 1.0))]
    jobs.append(("service2", "say-hello", http1_get(s2.addr, s2.port, "/api/v1/say-hello?name=probe", 5.0)))
    return jobs


async def probes(services, s2, deadline, results):
    """What the kubelet does, every second: new connection, 1 s timeout."""
    for _ in range(100_000):
        if time.monotonic() >= deadline:
            return
        tick = time.monotonic()
        jobs = probe_jobs(services, s2)
        answers = await asyncio.gather(*(j[2] for j in jobs))
        for (label, what, _), answer in zip(jobs, answers):
            key = f"{label} {what}"
            ok = answer in ("200", "SERVING")
            row = results.setdefault(key, {"ok": 0, "failed": 0, "answers": {}})
            row["ok" if ok else "failed"] += 1
            row["answers"][answer] = row["answers"].get(answer, 0) + 1
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


# ---------------------------------------------------------------- shutdown


async def terminate_and_time(services, limit_s):
    """SIGTERM every process at once; how long each took to exit, and its code."""
    t0 = time.monotonic()
    for s in services:
        if s.alive():
            s.proc.send_signal(signal.SIGTERM)
    out = {}
    for _ in range(int(limit_s / 0.05) + 1):
        for s in services:
            if s.label not in out and s.proc.poll() is not None:
                out[s.label] = {"exit_s": round(time.monotonic() - t0, 2), "exit_code": s.proc.returncode}
        if len(out) == len(services):
            break
        await asyncio.sleep(0.05)
    for s in services:
        out.setdefault(s.label, {"exit_s": None, "exit_code": None})
    return out


# ------------------------------------------------------------------- phase


class Groups:
    """Every group's task and what it records."""

    def __init__(self, services, cfg, sampler):
        s2, seconds = services[-1], cfg["exhaust_s"]
        self.deadline = time.monotonic() + seconds
        self.idle, self.probe = [], {}
        self.held = {s.label: {} for s in services}
        self.watch_res = {s.label: {} for s in services}
        self.watch_conns = {s.label: [] for s in services}
        self.stop_watching = asyncio.Event()
        spawn = asyncio.create_task
        self.tasks = [spawn(sampler.run(seconds + 1))]
        self.tasks += [spawn(idle_h2(i, s2, self.deadline, self.idle))
                       for i in range(cfg["idle_h2"])]
        self.tasks += [spawn(held_checks(s, cfg["held_conns"], self.deadline, self.held[s.label]))
                       for s in services]
        self.tasks += [spawn(probes(services, s2, self.deadline, self.probe))]
        self.watchers = [spawn(watches(s, cfg["watches"], self.stop_watching,
                                       self.watch_res[s.label], self.watch_conns[s.label]))
                         for s in services]

    async def wait(self, timeout):
        """Until every group but the Watch streams is done; raises what one raised."""
        done, pending = await asyncio.wait(self.tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for t in done:
            if t.exception() is not None:
                raise t.exception()

    async def count_watches(self):
        """Stop opening Watch streams, and count what each process did with them."""
        self.stop_watching.set()
        await asyncio.gather(*self.watchers, return_exceptions=True)
        for label, conns in self.watch_conns.items():
            self.watch_res[label].update(watch_counts(conns))
            self.watch_res[label]["connections"] = len(conns)

    async def close(self):
        for t in self.tasks + self.watchers:
            if not t.done():
                t.cancel()
        await asyncio.gather(*self.tasks, *self.watchers, return_exceptions=True)
        await asyncio.gather(*(c.close() for conns in self.watch_conns.values() for c in conns),
                             return_exceptions=True)


async def run(services, cfg):
    """The phase; then SIGTERM with the Watch streams still open."""
    seconds = cfg["exhaust_s"]
    sampler = Sampler(services, 1.0)
    sampler.sample()
    t0 = time.monotonic()
    log(f"exhaustion: {seconds:g} s: {cfg['idle_h2']} idle h2 connections, {cfg['watches']} Watch "
        f"streams and {cfg['held_conns']} connections of held Check calls per admin port, "
        f"probes every second")
    groups = Groups(services, cfg, sampler)
    try:
        await groups.wait(seconds + 60)
        await groups.count_watches()
        sampler.sample()
        log("exhaustion: SIGTERM with the Watch streams open")
        shutdown = await terminate_and_time(services, cfg["shutdown_limit_s"] + 10)
    finally:
        await groups.close()
    return {"seconds": seconds, "wall_s": round(time.monotonic() - t0, 1), "idle_h2": groups.idle,
            "watches": groups.watch_res, "held": groups.held, "probes": groups.probe,
            "shutdown": shutdown, "samples": sampler.samples}
