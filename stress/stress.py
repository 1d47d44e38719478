#!/usr/bin/env python3
"""Overload and soak check of service1 and service2, as shipped: `make stress`.

1. Builds the release binaries and makes throw-away certificates (bench.py's
   helpers), raises the open-file limit, starts service1 x2 (127.0.0.2, .3,
   one gRPC port) and service2 (static:/// target), mTLS on, JSON logs to
   files, and waits until they are ready.
2. The storm (STRESS_STORM_SECONDS, 60 s): at the same time
   - oha with 2,000 connections on service2's say-hello,
   - 200 slowloris connections that send a request head one byte a second
     and never finish it (plus two small variant groups: connections that
     send nothing, and connections that trickle the HTTP/2 preface),
   - 20 clients sending a 64 KiB header in a loop (they must get 431),
   - 10 well-behaved keep-alive clients at a modest rate that honour
     `503 + Retry-After` (their success rate is the headline figure),
   while every service process's VmRSS and open fds are sampled each second.
3. Recovery, same processes: /readyz on all, 100 sequential say-hello all
   200, the same pids (same start times), service2's open fds back near the
   baseline.
4. A soak on fresh processes (STRESS_SOAK_SECONDS, 600 s): oha at 500 req/s
   over 20 connections; RSS every 10 s; flat RSS and zero errors.
5. results/stress-<UTC>/stress.json and stress.md, a printed summary, and a
   last line `stress: N passed, N failed`.

Python 3 standard library and oha only. Loopback only. Every loop and every
wait is bounded in count and time; every process started is stopped (by
pid: SIGTERM, then SIGKILL after a bounded wait) before exit.

Exit status: 0 every check passed; 1 a check failed; 2 setup failed (build,
load generator, a service that does not start, bad settings); 130
interrupted. See stress/README.md.
"""

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ left in bench/ (it is not git-ignored)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import bench  # noqa: E402  (build, certgen, service start/stop, /proc readers, oha)
import exhaust  # noqa: E402  (the resource-exhaustion phase: idle h2, Watch streams, held calls)

from bench import SetupError, Stop, fmt  # noqa: E402

REPO = bench.REPO
MIB = 1024 * 1024

# The services' defaults this harness relies on (README "Limits"); it does
# not change them.
HEADER_READ_TIMEOUT_S = 10.0  # HTTP_HEADER_READ_TIMEOUT
MAX_HEADER_BYTES = 16384  # HTTP_MAX_HEADER_BYTES
IDLE_TIMEOUT_S = 60.0  # HTTP_IDLE_TIMEOUT
# The server looks for idle connections every quarter of the timeout, and
# the client's last PING may be up to 5 s old: a connection idle for the
# timeout is closed at most this much later.
IDLE_SLACK_S = IDLE_TIMEOUT_S / 4 + 5.0
HEALTH_MAX_WATCHES = 100  # HEALTH_MAX_WATCHES
SHUTDOWN_GRACE_S = 20.0  # SHUTDOWN_GRACE
# An open Watch must not hold a shutdown: exit well within the grace period.
SHUTDOWN_LIMIT_S = 10.0

# The flood's requests that may end in a connection error or timeout rather
# than an answer (1 in 10,000). The server closes no busy connection, and the
# listen backlog holds a 2,000-connection burst; what is left is the machine.
FLOOD_ERROR_PCT = 0.01

# Slack on top of the header-read timeout for "cut off in time": the
# server's timer starts when it has accepted the connection and read its
# first byte, which under the storm can lag the client's connect.
CUTOFF_SLACK_S = 5.0

REPLICAS = 2
OK_BODY = b'"Hello, GOOD!"'


def log(msg):
    print(f"stress: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- settings


def env_int(name, default, lo, hi):
    return bench.env_ints(name, [default], lo, hi)[0]


def env_float(name, default, lo, hi):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SetupError(f"{name}={raw!r}: expected a number")
    if not lo <= value <= hi:
        raise SetupError(f"{name}={raw!r}: must be between {lo:g} and {hi:g}")
    return value


def settings():
    s = {
        "storm_s": bench.env_seconds("STRESS_STORM_SECONDS", 60.0, lo=20.0, hi=3600.0),
        "soak_s": bench.env_seconds("STRESS_SOAK_SECONDS", 600.0, lo=10.0, hi=86400.0),
        "exhaust_s": env_float("STRESS_EXHAUST_SECONDS", 100.0, 0.0, 3600.0),
        "idle_h2": env_int("STRESS_IDLE_H2", 1000, 0, 20000),
        "watches": env_int("STRESS_WATCHES", 2000, 0, 100000),
        "held_conns": env_int("STRESS_HELD_CONNS", 100, 0, 2000),
        "rss_per_stream_kib": env_float("STRESS_RSS_PER_STREAM_KIB", 8.0, 0.0, 1024.0),
        "connections": env_int("STRESS_CONNECTIONS", 2000, 10, 20000),
        "slowloris": env_int("STRESS_SLOWLORIS", 200, 0, 2000),
        "slowloris_interval_s": env_float("STRESS_SLOWLORIS_INTERVAL", 1.0, 0.1, 5.0),
        "variants": os.environ.get("STRESS_SLOWLORIS_VARIANTS", "1") != "0",
        "variant_conns": 10,
        "oversized": env_int("STRESS_OVERSIZED", 20, 0, 200),
        "oversized_bytes": env_int("STRESS_OVERSIZED_BYTES", 64 * 1024, MAX_HEADER_BYTES + 1,
                                   1024 * 1024),
        "good_clients": env_int("STRESS_GOOD_CLIENTS", 10, 1, 100),
        "good_rate": env_float("STRESS_GOOD_RATE", 50.0, 1.0, 1000.0),
        "good_attempts": env_int("STRESS_GOOD_ATTEMPTS", 3, 1, 10),
        "good_deadline_s": env_float("STRESS_GOOD_DEADLINE", 10.0, 1.0, 60.0),
        "good_target_pct": env_float("STRESS_GOOD_TARGET", 99.0, 0.0, 100.0),
        "rss_base_mib": env_float("STRESS_RSS_BASE_MIB", 32.0, 4.0, 4096.0),
        "rss_per_conn_kib": env_float("STRESS_RSS_PER_CONN_KIB", 40.0, 0.0, 1024.0),
        "soak_rate": env_int("STRESS_SOAK_RATE", 500, 1, 100000),
        "soak_concurrency": env_int("STRESS_SOAK_CONCURRENCY", 20, 1, 1000),
        "soak_tolerance_mib": env_float("STRESS_SOAK_RSS_TOLERANCE_MIB", 5.0, 0.0, 1024.0),
        "recovery_timeout_s": bench.env_seconds("STRESS_RECOVERY_TIMEOUT", 30.0, lo=1.0, hi=600.0),
        "ready_timeout_s": bench.env_seconds("STRESS_READY_TIMEOUT", 30.0, lo=1.0, hi=600.0),
        "results_dir": Path(os.environ.get("STRESS_RESULTS_DIR", str(REPO / "results"))),
        "cargo": os.environ.get("CARGO", "cargo"),
        "oha": os.environ.get("OHA", ""),
        "name": "test",  # bench.start_topology's smoke request
    }
    # RSS every 10 s in a long soak; at least ~10 samples in a short one.
    s["soak_sample_s"] = min(10.0, max(1.0, s["soak_s"] / 10))
    # The idle connections must have time to be closed: timeout + slack + 5 s.
    if 0 < s["exhaust_s"] < IDLE_TIMEOUT_S + IDLE_SLACK_S + 5:
        raise SetupError(f"STRESS_EXHAUST_SECONDS={s['exhaust_s']:g}: 0 (leave the phase out) or at "
                         f"least {IDLE_TIMEOUT_S + IDLE_SLACK_S + 5:g}")
    s["shutdown_limit_s"] = SHUTDOWN_LIMIT_S
    # Warm-up before the soak's "start" RSS: a tenth of it, 5-60 s.
    s["soak_warmup_s"] = min(60.0, max(5.0, s["soak_s"] / 10))
    return s


def raise_fd_limit(cfg):
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by services and oha)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= want:
        new = soft
    else:
        new = want
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            new = soft
    # service2 holds one fd per client connection: the flood, the slowloris
    # and the rest, plus its own; 2,500 leaves room for everything else.
    needed = cfg["connections"] + 2500
    info = {"soft_before": soft, "hard": hard, "soft": new, "needed": needed,
            "connections_requested": cfg["connections"], "reduced": False}
    if new != resource.RLIM_INFINITY and new < needed:
        cfg["connections"] = max(10, int(new) - 2500)
        info["reduced"] = True
        info["warning"] = (f"open-file limit {new} (hard {hard}) is below {needed}: the flood uses "
                           f"{cfg['connections']} connections instead of "
                           f"{info['connections_requested']}")
        log("WARNING " + "!" * 20)
        log("WARNING " + info["warning"])
        log("WARNING " + "!" * 20)
    else:
        log(f"open-file limit {'raised from ' + str(soft) + ' to' if new != soft else 'already at'} "
            f"{new} (hard {hard}), for the services and oha too")
    info["connections_used"] = cfg["connections"]
    return info


def check_oha_flags(oha):
    code, text, _ = bench.run_bounded([oha, "--help"], 30, stdout=subprocess.PIPE, text=True)
    missing = [f for f in ("-t", "--connect-timeout") if f not in text]
    if code != 0 or missing:
        raise SetupError(f"{oha} lacks flags {missing}")


# --------------------------------------------------------------- /proc, http


def proc_sample(pid):
    out = {"rss_kib": None, "hwm_kib": None, "threads": None, "fds": None}
    for line in bench.read_text(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            out["rss_kib"] = int(value.split()[0])
        elif key == "VmHWM":
            out["hwm_kib"] = int(value.split()[0])
        elif key == "Threads":
            out["threads"] = int(value.split()[0])
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def proc_start_ticks(pid):
    """Field 22 of /proc/PID/stat: the start time; a restarted pid differs."""
    stat = bench.read_text(f"/proc/{pid}/stat")
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 else None


class Sampler:
    """Samples every service process every `interval` seconds (asyncio task)."""

    def __init__(self, services, interval):
        self.services, self.interval = services, interval
        self.t0 = time.monotonic()
        self.samples = []  # {"t": s, "<label>": proc_sample}

    def sample(self):
        row = {"t": round(time.monotonic() - self.t0, 2)}
        for s in self.services:
            row[s.label] = proc_sample(s.pid)
        self.samples.append(row)
        return row

    async def run(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            await asyncio.sleep(self.interval)


def metrics_counts(service):
    """service2's say-hello responses by status, from /metrics on its admin port."""
    try:
        code, body = bench.http_get(f"http://{service.addr}:{service.admin_port}/metrics",
                                    timeout=5.0)
    except OSError:
        return None
    if code != 200:
        return None
    counts, dropped = {}, None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("http_server_requests_total{") and 'route="/api/v1/say-hello"' in line:
            labels, _, value = line.rpartition(" ")
            status = labels.split('status="')[1].split('"')[0] if 'status="' in labels else "?"
            counts[status] = counts.get(status, 0) + int(float(value))
        elif line.startswith("log_lines_dropped"):
            try:
                dropped = int(float(line.split()[-1]))
            except ValueError:
                pass
    return {"say_hello_by_status": counts, "log_lines_dropped": dropped}


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(min(n, 1 << 20))
    return status, headers, body


async def close_writer(writer):
    if writer is None:
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass


def tally(counts, key, n=1):
    counts[key] = counts.get(key, 0) + n


def pctl(values, p):
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def err_name(e):
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, asyncio.IncompleteReadError):
        return "closed before a whole response"
    return type(e).__name__


# -------------------------------------------------------------- the groups


async def good_client(i, s2, cfg, deadline, stats):
    """A well-behaved client: one keep-alive connection, paced requests, and a
    retry after `Retry-After` when (and only when) it gets the documented 503."""
    period = cfg["good_clients"] / cfg["good_rate"]
    next_at = time.monotonic() + period * i / cfg["good_clients"]
    reader = writer = None
    n = on_conn = 0
    fresh, local = True, None
    try:
        while True:
            now = time.monotonic()
            if next_at > now:
                await asyncio.sleep(next_at - now)
            if time.monotonic() >= deadline:
                break
            next_at = max(next_at + period, time.monotonic())
            n += 1
            started = time.monotonic()
            give_up = started + cfg["good_deadline_s"]
            outcome, attempts, first_status = None, 0, None
            while attempts < cfg["good_attempts"]:
                attempts += 1
                left = give_up - time.monotonic()
                if left <= 0:
                    outcome = "deadline passed"
                    break
                try:
                    fresh = writer is None
                    if writer is None:
                        on_conn = 0
                        reader, writer = await asyncio.wait_for(
                            asyncio.open_connection(s2.addr, s2.port), left)
                        stats["connects"] += 1
                        local = writer.get_extra_info("sockname")
                    on_conn += 1
                    writer.write(
                        (f"GET /api/v1/say-hello?name=good HTTP/1.1\r\nHost: {s2.addr}:{s2.port}\r\n"
                         f"X-Request-ID: stress-good-{i}-{n}-{attempts}\r\n\r\n").encode())
                    status, headers, body = await asyncio.wait_for(
                        read_response(reader), max(0.01, give_up - time.monotonic()))
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                    outcome = err_name(e)
                    tally(stats["attempt_answers"], outcome)
                    if len(stats["failures"]) < 100:  # enough to follow a few into the logs
                        stats["failures"].append({
                            "t_s": round(time.monotonic() - stats["t0"], 3), "error": outcome,
                            "request_id": f"stress-good-{i}-{n}-{attempts}",
                            "fresh_connection": fresh, "requests_on_connection": on_conn, "local": local})
                    await close_writer(writer)
                    reader = writer = None
                    break
                retry_after = headers.get("retry-after")
                documented = status == 200 or (status == 503 and bool(retry_after)
                                                and retry_after.isdigit())
                tally(stats["attempt_answers"], "200" if status == 200 else
                      "503 + Retry-After" if documented else str(status))
                if headers.get("connection", "").lower() == "close":
                    await close_writer(writer)
                    reader = writer = None
                if first_status is None:
                    first_status = status
                if status == 200:
                    outcome = "200" if body == OK_BODY else "200 with a wrong body"
                    break
                if status == 503 and documented:
                    stats["shed_503"] += 1
                    wait = min(float(retry_after), 5.0)
                    if time.monotonic() + wait >= give_up:
                        outcome = "503, no time left to retry"
                        break
                    outcome = "503, retries used up"
                    await asyncio.sleep(wait)
                    continue
                outcome = f"{status}" + (" without Retry-After" if status == 503 else "")
                break
            latency = time.monotonic() - started
            stats["requests"] += 1
            stats["attempts"] += attempts
            tally(stats["outcomes"], outcome)
            if outcome == "200":
                stats["ok"] += 1
                stats["latencies"].append(latency)
                if first_status == 200:
                    stats["ok_first_attempt"] += 1
    finally:
        await close_writer(writer)


def slowloris_payload(kind):
    """Bytes a slowloris connection sends, one at a time (never a whole head)."""
    if kind == "partial-head":
        yield from b"GET /api/v1/say-hello?name=slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for k in range(1_000_000):
            yield from f"X-Slow-{k}: x\r\n".encode()
    elif kind == "h2-preface":
        yield from b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    # "silent": nothing


async def slowloris_conn(i, kind, s2, interval, deadline, results):
    """One slowloris slot: connect, trickle, note when the server cuts it off;
    again while a whole header-read timeout (plus slack) still fits."""
    limit = HEADER_READ_TIMEOUT_S + CUTOFF_SLACK_S
    await asyncio.sleep(0.005 * i)  # spread the connects a little
    for _cycle in range(1000):
        if time.monotonic() + limit + 1 > deadline:
            return
        rec = {"kind": kind, "outcome": None, "open_s": None, "bytes_sent": 0, "received": ""}
        results.append(rec)
        t_connect = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(s2.addr, s2.port), 10)
        except (OSError, asyncio.TimeoutError) as e:
            rec["outcome"] = f"connect failed ({err_name(e)})"
            rec["open_s"] = round(time.monotonic() - t_connect, 3)
            await asyncio.sleep(1)
            continue
        opened = time.monotonic()
        payload = slowloris_payload(kind)
        received = b""
        try:
            for _tick in range(100_000):
                byte = next(payload, None)
                if byte is not None:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    rec["bytes_sent"] += 1
                try:
                    data = await asyncio.wait_for(reader.read(4096), interval)
                except asyncio.TimeoutError:
                    data = None
                if data == b"":
                    rec["outcome"] = "closed by the server"
                    break
                if data:
                    received += data[:200]
                if time.monotonic() >= deadline:
                    age = time.monotonic() - opened
                    rec["outcome"] = "still open at the end" if age > limit else "censored"
                    break
        except (OSError, asyncio.IncompleteReadError) as e:
            rec["outcome"] = "closed by the server"
            rec["close_error"] = err_name(e)
        finally:
            rec["open_s"] = round(time.monotonic() - opened, 3)
            rec["received"] = received[:80].decode("latin-1")
            await close_writer(writer)
        if kind != "partial-head":
            return  # the variants: one connection per slot is enough


async def oversized_client(i, s2, cfg, deadline, results):
    head = (b"GET /api/v1/say-hello?name=big HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
            + b"a" * cfg["oversized_bytes"] + b"\r\n\r\n")
    await asyncio.sleep(0.05 * i)
    for _ in range(100_000):
        if time.monotonic() >= deadline:
            return
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(s2.addr, s2.port), 5)
        except (OSError, asyncio.TimeoutError) as e:
            key = f"connect failed ({err_name(e)})"
        else:
            try:
                writer.write(head)
                status, _, _ = await asyncio.wait_for(read_response(reader), 10)
                key = str(status)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                key = err_name(e)
            finally:
                await close_writer(writer)
        results[key] = results.get(key, 0) + 1
        await asyncio.sleep(0.2)


async def run_oha_async(cmd, timeout):
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        raise SetupError(f"oha took longer than {timeout:g}s")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise SetupError(f"oha failed (exit {proc.returncode}): {err.decode()[:500]}")
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise SetupError(f"oha printed no JSON: {out[:300]!r} {err[:300]!r}")


def oha_cmd(oha, url, seconds, concurrency, rate=None):
    cmd = [oha, "--no-tui", "--output-format", "json", "-z", f"{round(seconds * 1000)}ms",
           "-c", str(concurrency), "-w", "-t", "20s", "--connect-timeout", "10s"]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    return cmd + [url]


# ----------------------------------------------------------------- phases


async def storm_async(services, url, oha, cfg):
    s2 = services[-1]
    seconds = cfg["storm_s"]
    sampler = Sampler(services, 1.0)
    sampler.sample()
    metrics_before = metrics_counts(s2)
    good = {"requests": 0, "ok": 0, "ok_first_attempt": 0, "attempts": 0, "shed_503": 0,
            "connects": 0, "outcomes": {}, "attempt_answers": {}, "latencies": [],
            "failures": [], "t0": time.monotonic()}
    slow, oversized = [], {}
    host0 = bench.host_cpu()
    cpu0 = {s.label: bench.proc_cpu_ticks(s.pid) for s in services}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    me0 = resource.getrusage(resource.RUSAGE_SELF)
    loadavg = bench.read_text("/proc/loadavg").split()[:3]
    t0 = time.monotonic()
    deadline = t0 + seconds
    flood_cmd = oha_cmd(oha, url.replace("name=test", "name=flood"), seconds, cfg["connections"])
    log(f"storm: {seconds:g} s: oha -c {cfg['connections']}, {cfg['slowloris']} slowloris"
        + (f" (+{cfg['variant_conns']} silent, +{cfg['variant_conns']} h2-preface)"
           if cfg["variants"] else "")
        + f", {cfg['oversized']} oversized-header clients, {cfg['good_clients']} well-behaved "
        f"clients at {cfg['good_rate']:g} req/s")
    tasks = [asyncio.create_task(sampler.run(seconds + 2))]
    tasks += [asyncio.create_task(good_client(i, s2, cfg, deadline, good))
              for i in range(cfg["good_clients"])]
    kinds = [("partial-head", cfg["slowloris"])]
    if cfg["variants"]:
        kinds += [("silent", cfg["variant_conns"]), ("h2-preface", cfg["variant_conns"])]
    for kind, count in kinds:
        interval = cfg["slowloris_interval_s"] if kind == "partial-head" else 2.0
        tasks += [asyncio.create_task(slowloris_conn(i, kind, s2, interval, deadline, slow))
                  for i in range(count)]
    tasks += [asyncio.create_task(oversized_client(i, s2, cfg, deadline, oversized))
              for i in range(cfg["oversized"])]
    flood = asyncio.create_task(run_oha_async(flood_cmd, seconds + 90))
    try:
        report = await flood
        # Every client task stops at `deadline` by itself; bound the wait anyway.
        done, pending = await asyncio.wait(tasks, timeout=max(5.0, deadline - time.monotonic()) + 30)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            if t.exception() is not None:
                raise t.exception()
    finally:
        for t in tasks + [flood]:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, flood, return_exceptions=True)
    t1 = time.monotonic()
    host1 = bench.host_cpu()
    cpu1 = {s.label: bench.proc_cpu_ticks(s.pid) for s in services}
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    sampler.sample()
    cpu_s = {label: (cpu1[label] - cpu0[label]) / bench.CLK_TCK for label in cpu0}
    cpu_s["oha"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    cpu_s["python clients"] = (me1.ru_utime + me1.ru_stime) - (me0.ru_utime + me0.ru_stime)
    flood_res = bench.summarize_oha(report)
    flood_res["oha_command"] = ["oha"] + flood_cmd[1:]
    total = host1[2] - host0[2]
    return {
        "seconds": seconds,
        "wall_s": round(t1 - t0, 1),
        "loadavg_before": loadavg,
        "host_busy_pct": 100.0 * (host1[0] - host0[0]) / total if total else None,
        "host_steal_pct": 100.0 * (host1[1] - host0[1]) / total if total else None,
        "cpu_s": {k: round(v, 2) for k, v in cpu_s.items()},
        "flood": flood_res,
        "good": good,
        "slowloris": slow,
        "oversized": oversized,
        "samples": sampler.samples,
        "metrics_before": metrics_before,
        "metrics_after": metrics_counts(s2),
    }


def recover(services, url, baseline, cfg):
    """After the storm, on the same processes: ready, 100 x 200, same pids."""
    s2 = services[-1]
    t0 = time.monotonic()
    limit = t0 + cfg["recovery_timeout_s"]
    ready_after = None
    last = {}
    for _ in range(100_000):
        not_ready = []
        for s in services:
            try:
                code, body = bench.http_get(f"http://{s.addr}:{s.admin_port}/readyz", timeout=1.0)
            except OSError as e:
                code, body = None, str(e).encode()
            last[s.label] = f"{code} {body[:200]!r}"
            ok = code == 200
            if ok and s.kind == "service2":
                try:
                    ok = json.loads(body).get("service1_endpoints", {}).get("ready") == REPLICAS
                except ValueError:
                    ok = False
            if not ok:
                not_ready.append(s.label)
        if not not_ready:
            ready_after = time.monotonic() - t0
            break
        if time.monotonic() > limit:
            break
        time.sleep(0.2)
    statuses = {}
    seq_t0 = time.monotonic()
    if ready_after is not None:
        for k in range(100):
            try:
                code, _ = bench.http_get(url, timeout=5.0)
                key = str(code)
            except OSError as e:
                key = type(e).__name__
            statuses[key] = statuses.get(key, 0) + 1
    seq_s = time.monotonic() - seq_t0
    # Connections the storm opened are closed: service2's fds near the baseline.
    fds_limit = baseline["fds"][s2.label] + 50
    fds_now = None
    for _ in range(100_000):
        fds_now = proc_sample(s2.pid)["fds"]
        if fds_now is not None and fds_now <= fds_limit or time.monotonic() > limit:
            break
        time.sleep(0.2)
    procs = []
    for s in services:
        procs.append({"process": s.label, "pid": s.pid, "alive": s.alive(),
                      "start_ticks_before": baseline["start"][s.label],
                      "start_ticks_after": proc_start_ticks(s.pid) if s.alive() else None,
                      **proc_sample(s.pid)})
    return {
        "ready_after_s": ready_after, "readyz_last": last,
        "sequential_statuses": statuses, "sequential_s": round(seq_s, 2),
        "fds_service2": fds_now, "fds_service2_baseline": baseline["fds"][s2.label],
        "fds_service2_limit": fds_limit,
        "processes": procs,
    }


async def soak_async(services, url, oha, cfg):
    sampler = Sampler(services, cfg["soak_sample_s"])
    before = sampler.sample()
    cmd = oha_cmd(oha, url, cfg["soak_s"], cfg["soak_concurrency"], cfg["soak_rate"])
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
    res = bench.summarize_oha(report)
    res["oha_command"] = ["oha"] + cmd[1:]
    return {"before_load": before, "samples": sampler.samples, "load": res,
            "metrics_after": metrics_counts(services[-1])}


# ----------------------------------------------------------------- checks


def slope_mib_per_hour(points):
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    if den == 0:
        return None
    return sum((t - mx) * (v - my) for t, v in points) / den * 3600 / 1024


def summarize(doc, cfg):
    """Figures per phase, and the checks: list of {check, measured, limit, pass}."""
    checks = []

    def check(name, measured, limit, ok, phase):
        checks.append({"phase": phase, "check": name, "measured": measured, "limit": limit,
                       "pass": bool(ok)})

    storm, rec, soak = doc["storm"], doc["recovery"], doc.get("soak")
    labels = [p["process"] for p in doc["processes"]["storm"]]

    # -- storm: memory. The bound: a fixed base plus a budget per client
    # connection the process holds at once (service1's only client is service2).
    client_conns = {"service1": 1,
                    "service2": doc["fd_limit"]["connections_used"] + cfg["slowloris"]
                    + (2 * cfg["variant_conns"] if cfg["variants"] else 0)
                    + cfg["oversized"] + cfg["good_clients"]}
    rss = {}
    for label in labels:
        kind = label.split("[")[0]
        limit = cfg["rss_base_mib"] + cfg["rss_per_conn_kib"] * client_conns[kind] / 1024
        series = [v for _, v in series_of(storm["samples"], label, "rss_kib")]
        hwm = [v for _, v in series_of(storm["samples"], label, "hwm_kib")]
        fds = [v for _, v in series_of(storm["samples"], label, "fds")]
        rss[label] = {"start_mib": series[0] / 1024 if series else None,
                      "peak_sampled_mib": max(series) / 1024 if series else None,
                      "hwm_mib": max(hwm) / 1024 if hwm else None,
                      "last_mib": series[-1] / 1024 if series else None,
                      "peak_fds": max(fds) if fds else None,
                      "client_connections": client_conns[kind], "limit_mib": limit}
        v = rss[label]["hwm_mib"]
        check(f"storm: {label} peak RSS (VmHWM)", f"{fmt(v, 1)} MiB",
              f"≤ {limit:.0f} MiB ({cfg['rss_base_mib']:g} MiB + {cfg['rss_per_conn_kib']:g} KiB "
              f"× {client_conns[kind]:,} connection{'s' if client_conns[kind] != 1 else ''})",
              v is not None and v <= limit, "storm")
    storm["rss"] = rss

    # -- storm: well-behaved clients
    g = storm["good"]
    pct = 100.0 * g["ok"] / g["requests"] if g["requests"] else 0.0
    g["success_pct"] = pct
    g["first_attempt_pct"] = 100.0 * g["ok_first_attempt"] / g["requests"] if g["requests"] else 0.0
    lat = g.pop("latencies")
    g.pop("t0", None)
    g["latency_ms"] = {k: (pctl(lat, p) * 1000 if lat else None)
                       for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
    check("storm: well-behaved requests answered 200 (retrying 503 + Retry-After)",
          f"{pct:.2f} % of {g['requests']:,}", f"≥ {cfg['good_target_pct']:g} %",
          g["requests"] >= 10 and pct >= cfg["good_target_pct"], "storm")
    answers = g["attempt_answers"]
    n_att = sum(answers.values())
    n_doc = answers.get("200", 0) + answers.get("503 + Retry-After", 0)
    check("storm: every well-behaved attempt answered 200 or 503 + Retry-After (no timeout, "
          "reset or other status)", f"{n_doc:,} of {n_att:,}"
          + (f" ({', '.join(f'{k}: {v}' for k, v in answers.items() if k not in ('200', '503 + Retry-After'))})"
             if n_doc != n_att else ""), "all", n_att > 0 and n_doc == n_att, "storm")

    # -- storm: the flood
    f = storm["flood"]
    other = {k: v for k, v in f["status_codes"].items() if k not in ("200", "503")}
    f["served_pct"] = 100.0 * f["ok"] / (f["completed"] + sum(f["connection_errors"].values())) \
        if f["completed"] else 0.0
    check("storm: flood answered only 200 or 503 (no other status)",
          ", ".join(f"{k}: {v:,}" for k, v in sorted(f["status_codes"].items())) or "none",
          "{200, 503}", not other and f["completed"] > 0, "storm")
    n_err = sum(f["connection_errors"].values())
    n_tries = f["completed"] + n_err
    check("storm: flood requests lost to connection errors or timeouts",
          f"{n_err:,} of {n_tries:,}"
          + (f" ({', '.join(f'{k}: {v:,}' for k, v in f['connection_errors'].items())})" if n_err else ""),
          f"≤ {FLOOD_ERROR_PCT:g} %", n_tries > 0 and 100.0 * n_err / n_tries <= FLOOD_ERROR_PCT, "storm")

    # -- storm: slowloris
    limit_s = HEADER_READ_TIMEOUT_S + CUTOFF_SLACK_S
    groups = {}
    for r in storm["slowloris"]:
        grp = groups.setdefault(r["kind"], {"connections": 0, "closed_by_server": 0,
                                            "still_open_at_end": 0, "censored": 0,
                                            "connect_failed": 0, "late": 0, "times": [],
                                            "received": {}})
        if r["outcome"] and r["outcome"].startswith("connect failed"):
            grp["connect_failed"] += 1
            continue
        grp["connections"] += 1
        if r["outcome"] == "closed by the server":
            grp["closed_by_server"] += 1
            grp["times"].append(r["open_s"])
            if r["open_s"] > limit_s:
                grp["late"] += 1
            key = r["received"][:40] or "(nothing)"
            grp["received"][key] = grp["received"].get(key, 0) + 1
        elif r["outcome"] == "still open at the end":
            grp["still_open_at_end"] += 1
        else:
            grp["censored"] += 1
    for kind, grp in groups.items():
        t = grp.pop("times")
        grp["cutoff_s"] = {"min": min(t) if t else None, "p50": pctl(t, 50),
                           "p99": pctl(t, 99), "max": max(t) if t else None}
    storm["slowloris_summary"] = groups
    names = {"partial-head": "slowloris (partial request head, 1 byte per "
                             f"{cfg['slowloris_interval_s']:g} s)",
             "silent": "slowloris variant: connect and send nothing",
             "h2-preface": "slowloris variant: HTTP/2 preface, 1 byte per 2 s"}
    kinds = (["partial-head"] if cfg["slowloris"] else []) \
        + (["silent", "h2-preface"] if cfg["variants"] else [])
    for kind in kinds:
        grp = groups.get(kind, {"closed_by_server": 0, "late": 0, "still_open_at_end": 0,
                                "cutoff_s": {"max": None}})
        in_time = grp["closed_by_server"] - grp["late"]
        judged = grp["closed_by_server"] + grp["still_open_at_end"]
        check(f"storm: {names[kind]} cut off within {limit_s:g} s",
              f"{in_time:,} of {judged:,} ("
              + (f"slowest {fmt(grp['cutoff_s']['max'], 1)} s, " if grp["closed_by_server"] else
                 "none closed, ")
              + f"{grp['still_open_at_end']} still open at the end)",
              f"all, ≤ {HEADER_READ_TIMEOUT_S:g} s + {CUTOFF_SLACK_S:g} s",
              judged > 0 and in_time == judged, "storm")

    # -- storm: oversized headers
    if cfg["oversized"]:
        o = storm["oversized"]
        got = {k: v for k, v in o.items() if not k.startswith("connect failed")}
        n431 = got.get("431", 0)
        check(f"storm: {cfg['oversized_bytes'] // 1024} KiB header answered 431",
              f"{n431:,} of {sum(got.values()):,}"
              + (f" (others: {', '.join(f'{k}: {v}' for k, v in got.items() if k != '431')})"
                 if len(got) > (1 if n431 else 0) else ""),
              "all", n431 > 0 and n431 == sum(got.values()), "storm")

    # -- recovery
    ra = rec["ready_after_s"]
    check("recovery: /readyz 200 on all (service2: 2 replicas ready)",
          f"after {fmt(ra, 1)} s" if ra is not None else "not ready",
          f"≤ {cfg['recovery_timeout_s']:g} s", ra is not None, "recovery")
    ok = rec["sequential_statuses"].get("200", 0)
    check("recovery: 100 sequential say-hello answered 200",
          f"{ok} of 100" + (f" ({rec['sequential_statuses']})" if ok != 100 else ""),
          "100", ok == 100, "recovery")
    same = all(p["alive"] and p["start_ticks_after"] == p["start_ticks_before"]
               for p in rec["processes"])
    check("recovery: no restart (same pids, same start times, alive)",
          ", ".join(f"{p['process']} {p['pid']}{'' if p['alive'] else ' DEAD'}"
                    for p in rec["processes"]), "unchanged", same, "recovery")
    check("recovery: service2's open fds back near the baseline",
          f"{rec['fds_service2']} (baseline {rec['fds_service2_baseline']})",
          f"≤ {rec['fds_service2_limit']}", rec["fds_service2"] is not None
          and rec["fds_service2"] <= rec["fds_service2_limit"], "recovery")

    if doc.get("exhaust") is not None:
        exhaust_checks(doc["exhaust"], cfg, check)

    # -- soak
    if soak is not None:
        ld = soak["load"]
        check("soak: zero errors (non-200 + connection errors)", f"{ld['errors']:,} of "
              f"{ld['completed'] + sum(ld['connection_errors'].values()):,}", "0",
              ld["errors"] == 0 and ld["completed"] > 0, "soak")
        want = cfg["soak_rate"] * cfg["soak_s"]
        check("soak: the load was delivered", f"{ld['completed']:,} requests "
              f"({ld['rps']:.0f} req/s)", f"≥ 90 % of {want:,.0f}",
              ld["completed"] >= 0.9 * want, "soak")
        flat = {}
        for label in [p["process"] for p in doc["processes"]["soak"]]:
            pts = [(t, v) for t, v in series_of(soak["samples"], label, "rss_kib")]
            after = [(t, v) for t, v in pts if t >= cfg["soak_warmup_s"]]
            fds = [v for _, v in series_of(soak["samples"], label, "fds")]
            start = after[0][1] / 1024 if after else None
            end = pts[-1][1] / 1024 if pts else None
            flat[label] = {
                "before_load_mib": soak["before_load"][label]["rss_kib"] / 1024,
                "start_mib": start, "start_t_s": after[0][0] if after else None,
                "end_mib": end, "max_mib": max(v for _, v in pts) / 1024 if pts else None,
                "slope_mib_per_hour": slope_mib_per_hour(after),
                "fds_start": fds[0] if fds else None, "fds_end": fds[-1] if fds else None,
            }
            check(f"soak: {label} RSS flat (end ≤ start after warm-up + "
                  f"{cfg['soak_tolerance_mib']:g} MiB)",
                  f"{fmt(start, 1)} → {fmt(end, 1)} MiB",
                  f"≤ {fmt(start + cfg['soak_tolerance_mib'], 1) if start else '–'} MiB",
                  start is not None and len(after) >= 2
                  and end <= start + cfg["soak_tolerance_mib"], "soak")
        soak["rss"] = flat
    return checks


def exhaust_checks(ex, cfg, check):
    phase = "exhaustion"
    idle = ex["idle_h2"]
    limit = IDLE_TIMEOUT_S + IDLE_SLACK_S
    closed = [r["closed_after_s"] for r in idle if r["closed_after_s"] is not None]
    in_time = [c for c in closed if c <= limit]
    served = sum(r["served"] for r in idle)
    check(f"exhaustion: idle h2 connections (one request, then only PINGs) closed by the server "
          f"within HTTP_IDLE_TIMEOUT + {IDLE_SLACK_S:g} s",
          f"{len(in_time):,} of {len(idle):,} (served first: {served:,}; close after "
          f"{fmt(min(closed) if closed else None, 1)}–{fmt(max(closed) if closed else None, 1)} s)",
          f"all, ≤ {limit:g} s", idle and len(in_time) == len(idle) == served, phase)
    for label, w in ex["watches"].items():
        check(f"exhaustion: {label} Watch streams open ≤ HEALTH_MAX_WATCHES, the rest refused",
              f"{w.get('watching', 0):,} open, {w.get('refused', 0):,} refused of "
              f"{w.get('attempted', 0):,}",
              f"≤ {HEALTH_MAX_WATCHES}, none unanswered",
              w.get("watching", 0) <= HEALTH_MAX_WATCHES and w.get("attempted", 0) > 0
              and w.get("unanswered_or_ended", 0) == 0, phase)
    probe_rows = [(k, v) for k, v in ex["probes"].items() if not k.endswith("say-hello")]
    failed = sum(v["failed"] for _, v in probe_rows)
    total = sum(v["ok"] + v["failed"] for _, v in probe_rows)
    check("exhaustion: probes answered (/livez, /readyz 200, gRPC Check SERVING; new connection, "
          "1 s timeout, every admin port every second)",
          f"{total - failed:,} of {total:,}", "all", total > 0 and failed == 0, phase)
    hello = ex["probes"].get("service2 say-hello", {"ok": 0, "failed": 0})
    check("exhaustion: say-hello served throughout", f"{hello['ok']:,} of "
          f"{hello['ok'] + hello['failed']:,}", "all", hello["ok"] > 0 and hello["failed"] == 0, phase)
    ex["rss"] = {}
    for label in ex["watches"]:
        w, h = ex["watches"][label], ex["held"][label]
        conns = w.get("connections", 0) + h.get("connections", 0) + 4  # + probes, service2's
        if label == "service2":
            conns += len(idle)
        streams = h.get("peak_held", 0) + w.get("watching", 0)
        bound = (cfg["rss_base_mib"] + cfg["rss_per_conn_kib"] * conns / 1024
                 + cfg["rss_per_stream_kib"] * streams / 1024)
        hwm = [v for _, v in series_of(ex["samples"], label, "hwm_kib")]
        peak = max(hwm) / 1024 if hwm else None
        ex["rss"][label] = {"hwm_mib": peak, "bound_mib": bound, "connections": conns,
                            "streams": streams}
        check(f"exhaustion: {label} peak RSS (VmHWM) ≤ {cfg['rss_base_mib']:g} MiB + "
              f"{cfg['rss_per_conn_kib']:g} KiB × {conns:,} connections + "
              f"{cfg['rss_per_stream_kib']:g} KiB × {streams:,} streams held",
              f"{fmt(peak, 1)} MiB", f"≤ {bound:.1f} MiB", peak is not None and peak <= bound, phase)
    sd = ex["shutdown"]
    slow = {k: v for k, v in sd.items() if v["exit_code"] != 0 or v["exit_s"] is None
            or v["exit_s"] > SHUTDOWN_LIMIT_S}
    check(f"exhaustion: SIGTERM with Watch streams open: every process exits 0 within "
          f"{SHUTDOWN_LIMIT_S:g} s (SHUTDOWN_GRACE is {SHUTDOWN_GRACE_S:g} s)",
          ", ".join(f"{k} {fmt(v['exit_s'], 2)} s (exit {v['exit_code']})" for k, v in sd.items()),
          f"≤ {SHUTDOWN_LIMIT_S:g} s, exit 0", not slow, phase)


def series_of(samples, label, key):
    return [(r["t"], r[label][key]) for r in samples
            if label in r and r[label].get(key) is not None]


# ------------------------------------------------------------------ output


def markdown(doc, cfg):
    m = doc["machine"]
    storm, rec, soak = doc["storm"], doc["recovery"], doc.get("soak")
    checks = doc["checks"]
    out = [f"# Stress {doc['timestamp']}", ""]
    out.append(f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['mem_total']}, {m['kernel']}; "
               f"load average at start {' '.join(m['loadavg_at_start'])}")
    out.append(f"- Commit: `{m['git_commit'][:12]}`"
               f"{' (uncommitted changes)' if m['git_dirty'] else ''}; {m['oha_version']}")
    fd = doc["fd_limit"]
    out.append(f"- Open-file limit: soft {fd['soft_before']} → {fd['soft']} (hard {fd['hard']}), "
               f"inherited by the services and oha")
    if fd.get("warning"):
        out.append(f"- **WARNING: {fd['warning']}**")
    out.append(f"- Services as shipped (release, mTLS, `LOG_FORMAT=json` to files, default limits; "
               f"`DRAIN_DELAY=0s`): service1 ×{REPLICAS} on 127.0.0.2–.{1 + REPLICAS}, service2 on "
               f"127.0.0.1 (`static:///`). The soak runs on fresh processes.")
    passed = sum(c["pass"] for c in checks)
    out += ["", f"## Checks: {passed} passed, {len(checks) - passed} failed", "",
            "| phase | check | measured | target | result |", "|---|---|---|---|---|"]
    for c in checks:
        out.append(f"| {c['phase']} | {c['check']} | {c['measured']} | {c['limit']} | "
                   f"{'PASS' if c['pass'] else '**FAIL**'} |")

    f, g = storm["flood"], storm["good"]
    out += ["", f"## Storm ({storm['seconds']:g} s; host busy {fmt(storm['host_busy_pct'], 0)} %, "
            f"steal {fmt(storm['host_steal_pct'], 0)} %, load average before "
            f"{' '.join(storm['loadavg_before'])})", ""]
    out.append(f"**Flood** (oha, {doc['fd_limit']['connections_used']:,} connections, HTTP/1.1 "
               f"keep-alive): {f['completed']:,} responses ({f['rps']:,.0f}/s): "
               + ", ".join(f"{k}: {v:,}" for k, v in sorted(f["status_codes"].items()))
               + f"; connection errors/timeouts: "
               + (", ".join(f"{k}: {v:,}" for k, v in f["connection_errors"].items()) or "none")
               + f". Served (200) {f['served_pct']:.1f} % of attempts; latency p50 "
               f"{fmt(f['latency_ms']['p50'], 1)} ms, p99 {fmt(f['latency_ms']['p99'], 1)} ms, "
               f"max {fmt(f['latency_ms']['max'], 0)} ms.")
    out += ["", "CPU seconds used during the storm: "
            + ", ".join(f"{k} {v:.1f}" for k, v in storm["cpu_s"].items())
            + f" (of {2 * storm['wall_s']:.0f} s on {m['nproc']} CPUs; other work on the host "
            "counts too)."]
    mb, ma = storm.get("metrics_before"), storm.get("metrics_after")
    if mb and ma:
        delta = {k: v - mb["say_hello_by_status"].get(k, 0)
                 for k, v in ma["say_hello_by_status"].items()}
        out.append("")
        out.append("service2's own count of say-hello responses during the storm (`/metrics`): "
                   + ", ".join(f"{k}: {v:,}" for k, v in sorted(delta.items()) if v)
                   + f"; log lines dropped: {ma.get('log_lines_dropped')}.")
    out += ["", f"**Well-behaved clients** ({cfg['good_clients']} keep-alive connections, "
            f"{cfg['good_rate']:g} req/s in all; up to {cfg['good_attempts']} attempts within "
            f"{cfg['good_deadline_s']:g} s, retrying only a 503 with `Retry-After`, after it): "
            f"{g['requests']:,} requests, {g['ok']:,} answered 200 ({g['success_pct']:.2f} %), "
            f"{g['ok_first_attempt']:,} at the first attempt ({g['first_attempt_pct']:.2f} %); "
            f"{g['attempts']:,} attempts answered "
            + ", ".join(f"{k}: {v:,}" for k, v in sorted(g["attempt_answers"].items()))
            + f"; new connections {g['connects']}; requests ended "
            + ", ".join(f"{k}: {v:,}" for k, v in sorted(g["outcomes"].items()))
            + f". Latency of a request, retries included: p50 {fmt(g['latency_ms']['p50'], 1)} ms, "
            f"p90 {fmt(g['latency_ms']['p90'], 1)}, p99 {fmt(g['latency_ms']['p99'], 1)}, max "
            f"{fmt(g['latency_ms']['max'], 1)} ms."]
    out += ["", "**Slowloris** (closed by the server: EOF or reset seen by the client; time from "
            "connect to close):", "",
            "| group | connections | closed by server | late (> limit) | still open at end "
            "| censored | connect failed | close after s: min / p50 / max | server sent |",
            "|---|---|---|---|---|---|---|---|---|"]
    for kind, grp in storm["slowloris_summary"].items():
        c = grp["cutoff_s"]
        out.append(f"| {kind} | {grp['connections']:,} | {grp['closed_by_server']:,} "
                   f"| {grp['late']:,} | {grp['still_open_at_end']:,} | {grp['censored']:,} "
                   f"| {grp['connect_failed']:,} | {fmt(c['min'], 1)} / {fmt(c['p50'], 1)} / "
                   f"{fmt(c['max'], 1)} | "
                   + (", ".join(f"`{k!r}`: {v}" for k, v in grp["received"].items()) or "–")
                   + " |")
    out.append("")
    out.append("“censored”: still open at the end but younger than the limit, so not judged. "
               "A partial-head slot reconnects after each cut-off while a whole timeout still fits.")
    if cfg["oversized"]:
        out += ["", f"**Oversized headers** ({cfg['oversized']} clients, "
                f"{cfg['oversized_bytes']:,}-byte header, new connection each): "
                + ", ".join(f"{k}: {v:,}" for k, v in sorted(storm["oversized"].items())) + "."]
    out += ["", "**Memory and fds** (sampled every second; VmHWM is the process's peak since "
            "start, so it also catches peaks between samples):", "",
            "| process | RSS at start MiB | peak sampled | VmHWM | last | peak fds |",
            "|---|---|---|---|---|---|"]
    for label, r in storm["rss"].items():
        out.append(f"| {label} | {fmt(r['start_mib'], 1)} | {fmt(r['peak_sampled_mib'], 1)} "
                   f"| {fmt(r['hwm_mib'], 1)} | {fmt(r['last_mib'], 1)} | {r['peak_fds']} |")
    out += ["", "## Recovery (same processes)", ""]
    out.append(f"Ready after {fmt(rec['ready_after_s'], 2)} s; 100 sequential say-hello: "
               + ", ".join(f"{k}: {v}" for k, v in rec["sequential_statuses"].items())
               + f" in {rec['sequential_s']} s; service2 open fds {rec['fds_service2']} "
               f"(baseline {rec['fds_service2_baseline']}).")
    out += ["", "| process | pid | alive | RSS MiB | VmHWM MiB | fds | threads |",
            "|---|---|---|---|---|---|---|"]
    for p in rec["processes"]:
        out.append(f"| {p['process']} | {p['pid']} | {p['alive']} | "
                   f"{fmt((p['rss_kib'] or 0) / 1024, 1)} | {fmt((p['hwm_kib'] or 0) / 1024, 1)} "
                   f"| {p['fds']} | {p['threads']} |")
    ex = doc.get("exhaust")
    if ex is not None:
        out += ["", f"## Exhaustion ({ex['seconds']:g} s, fresh processes)", ""]
        idle = ex["idle_h2"]
        closed = [r["closed_after_s"] for r in idle if r["closed_after_s"] is not None]
        out.append(f"**Idle HTTP/2** ({len(idle):,} connections to service2's REST port, one "
                   f"say-hello each, then a PING every 5 s): {sum(r['served'] for r in idle):,} "
                   f"served, {len(closed):,} closed by the server (GOAWAY on "
                   f"{sum(r['goaway'] for r in idle):,}) after {fmt(min(closed) if closed else None, 1)}"
                   f"–{fmt(max(closed) if closed else None, 1)} s of idleness; errors: "
                   f"{sum(1 for r in idle if r['error'])}.")
        out += ["", "| process | Watch streams tried | open | refused | connections | held Check "
                "calls opened | peak held | VmHWM MiB | bound MiB | exit after SIGTERM |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for label, w in ex["watches"].items():
            h, r, sd = ex["held"][label], ex.get("rss", {}).get(label, {}), ex["shutdown"][label]
            out.append(f"| {label} | {w.get('attempted', 0):,} | {w.get('watching', 0):,} "
                       f"| {w.get('refused', 0):,} | {w.get('connections', 0) + h.get('connections', 0):,} "
                       f"| {h.get('opened', 0):,} | {h.get('peak_held', 0):,} "
                       f"| {fmt(r.get('hwm_mib'), 1)} | {fmt(r.get('bound_mib'), 1)} "
                       f"| {fmt(sd['exit_s'], 2)} s, exit {sd['exit_code']} |")
        out += ["", "Probes (new connection each, 1 s timeout): "
                + "; ".join(f"{k}: {v['ok']:,} ok" + (f", {v['failed']} failed {v['answers']}"
                                                       if v["failed"] else "")
                            for k, v in sorted(ex["probes"].items())) + "."]
    if soak is not None:
        ld = soak["load"]
        out += ["", f"## Soak ({cfg['soak_s']:g} s, fresh processes)", ""]
        out.append(f"oha at {cfg['soak_rate']} req/s over {cfg['soak_concurrency']} connections: "
                   f"{ld['completed']:,} responses ({ld['rps']:.0f}/s), errors {ld['errors']} ("
                   + (", ".join(f"{k}: {v:,}" for k, v in sorted(ld["status_codes"].items())))
                   + (f"; {ld['connection_errors']}" if ld["connection_errors"] else "")
                   + f"); latency p50 {fmt(ld['latency_ms']['p50'], 2)} ms, p99 "
                   f"{fmt(ld['latency_ms']['p99'], 2)} ms, max {fmt(ld['latency_ms']['max'], 1)} ms.")
        out += ["", f"RSS every {cfg['soak_sample_s']:g} s; “start” is the first sample after the "
                f"{cfg['soak_warmup_s']:g} s warm-up, “end” the last, right after the load:", "",
                "| process | before load MiB | start | end | max | slope MiB/h | fds start → end |",
                "|---|---|---|---|---|---|---|"]
        for label, r in soak["rss"].items():
            out.append(f"| {label} | {fmt(r['before_load_mib'], 1)} | {fmt(r['start_mib'], 1)} "
                       f"| {fmt(r['end_mib'], 1)} | {fmt(r['max_mib'], 1)} "
                       f"| {fmt(r['slope_mib_per_hour'], 2)} | {r['fds_start']} → {r['fds_end']} |")
    out += ["", "Raw figures, every sample and every slowloris connection: "
            "[stress.json](stress.json). Service logs: `logs/` (gzip)."]
    return "\n".join(out) + "\n"


# -------------------------------------------------------------------- main


def start(certs, logdir, cfg, phase):
    logdir.mkdir(parents=True)
    log(f"{phase}: starting service1 x{REPLICAS} + service2")
    services, url = bench.start_topology("say-hello", REPLICAS, certs, logdir, cfg)
    return services, url


def finish(services):
    bench.stop_all(services)
    out = []
    for s in services:
        p = {"process": s.label, "service": s.kind, "pid": s.pid, "addr": s.addr,
             "port": s.port, "admin_port": s.admin_port, "exit_code": s.exit_code}
        try:
            p.update(bench.count_and_gzip(s.logfile))
        except OSError:
            pass
        out.append(p)
    return out


def main():
    bench.stop_on_signals()

    started = time.monotonic()
    cfg = settings()
    fd_info = raise_fd_limit(cfg)
    bench.build(cfg)
    oha, oha_version = bench.ensure_oha(cfg)
    check_oha_flags(oha)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    outdir = cfg["results_dir"] / f"stress-{stamp}"
    outdir.mkdir(parents=True, exist_ok=False)
    machine = bench.machine_info(oha_version)
    log(f"results in {outdir}; about {cfg['storm_s'] + cfg['exhaust_s'] + cfg['soak_s'] + 40:.0f} s")
    certs = Path(tempfile.mkdtemp(prefix="stress-certs-"))
    doc = {"timestamp": stamp, "machine": machine, "fd_limit": fd_info,
           "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items()
                        if k not in ("cargo", "oha", "name")},
           "constants": {"header_read_timeout_s": HEADER_READ_TIMEOUT_S,
                         "cutoff_slack_s": CUTOFF_SLACK_S, "replicas": REPLICAS},
           "processes": {}}
    services = []
    try:
        code, _, _ = bench.run_bounded([str(bench.RELEASE / "certgen"), "--out", str(certs)], 60,
                                       stdout=subprocess.DEVNULL)
        if code != 0:
            raise SetupError("certgen failed")

        # Storm and recovery, on one set of processes.
        services, url = start(certs, outdir / "logs" / "storm", cfg, "storm")
        baseline = {"start": {s.label: proc_start_ticks(s.pid) for s in services},
                    "fds": {s.label: proc_sample(s.pid)["fds"] for s in services}}
        doc["storm"] = asyncio.run(storm_async(services, url, oha, cfg))
        log("storm over; recovery")
        doc["recovery"] = recover(services, url, baseline, cfg)
        doc["processes"]["storm"] = finish(services)
        services = []

        # Exhaustion on fresh processes, so their peak memory is this phase's.
        if cfg["exhaust_s"]:
            services, url = start(certs, outdir / "logs" / "exhaust", cfg, "exhaustion")
            doc["exhaust"] = asyncio.run(exhaust.run(services, cfg, Sampler, log))
            doc["processes"]["exhaust"] = finish(services)
            services = []

        # Soak on fresh processes: the storm's retained heap would hide slow growth.
        services, url = start(certs, outdir / "logs" / "soak", cfg, "soak")
        doc["soak"] = asyncio.run(soak_async(services, url, oha, cfg))
        doc["processes"]["soak"] = finish(services)
        services = []
    finally:
        if services:
            bench.stop_all(services)
        shutil.rmtree(certs, ignore_errors=True)

    checks = summarize(doc, cfg)
    doc["checks"] = checks
    doc["machine"]["loadavg_at_end"] = bench.read_text("/proc/loadavg").split()[:3]
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    md = markdown(doc, cfg)
    (outdir / "stress.md").write_text(md)
    (outdir / "stress.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(md)
    for c in checks:
        if not c["pass"]:
            print(f"stress: FAIL {c['check']}: {c['measured']} (target {c['limit']})",
                  file=sys.stderr)
    log(f"done in {doc['elapsed_s']:.0f} s: {outdir}")
    passed = sum(c["pass"] for c in checks)
    print(f"stress: {passed} passed, {len(checks) - passed} failed", flush=True)
    return 0 if passed == len(checks) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as e:
        log(f"error: {e}")
        sys.exit(2)
    except (KeyboardInterrupt, Stop) as e:
        log(f"interrupted ({e or 'SIGINT'}); services stopped")
        sys.exit(130)
