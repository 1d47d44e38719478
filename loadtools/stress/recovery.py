"""Recovery after the storm, on the same processes: ready again, 100
say-hello answered, no restart, service2's open fds back near the baseline."""

import json
import time

from loadtools.procfs import proc_sample, proc_start_ticks
from loadtools.services import http_get
from loadtools.stress.limits import REPLICAS


def readyz_ok(s, last):
    """/readyz 200 (service2: every replica ready); its answer goes into `last`."""
    try:
        code, body = http_get(f"http://{s.addr}:{s.admin_port}/readyz", timeout=1.0)
    except OSError as e:
        code, body = None, str(e).encode()
    last[s.label] = f"{code} {body[:200]!r}"
    ok = code == 200
    if ok and s.kind == "service2":
        try:
            ok = json.loads(body).get("service1_endpoints", {}).get("ready") == REPLICAS
        except ValueError:
            ok = False
    return ok


def wait_ready_again(services, t0, limit, last):
    """Seconds from t0 until every process is ready, or None by `limit`."""
    for _ in range(100_000):
        not_ready = [s.label for s in services if not readyz_ok(s, last)]
        if not not_ready:
            return time.monotonic() - t0
        if time.monotonic() > limit:
            return None
        time.sleep(0.2)
    return None


def sequential_say_hello(url, count=100):
    """Statuses of `count` say-hello, one after the other (or the error's name)."""
    statuses = {}
    for _ in range(count):
        try:
            code, _ = http_get(url, timeout=5.0)
            key = str(code)
        except OSError as e:
            key = type(e).__name__
        statuses[key] = statuses.get(key, 0) + 1
    return statuses


def wait_fds(s2, fds_limit, limit):
    """service2's open fds, once at most `fds_limit` (or as they are at `limit`)."""
    fds_now = None
    for _ in range(100_000):
        fds_now = proc_sample(s2.pid)["fds"]
        if fds_now is not None and fds_now <= fds_limit or time.monotonic() > limit:
            break
        time.sleep(0.2)
    return fds_now


def process_rows(services, baseline):
    return [{"process": s.label, "pid": s.pid, "alive": s.alive(),
             "start_ticks_before": baseline["start"][s.label],
             "start_ticks_after": proc_start_ticks(s.pid) if s.alive() else None,
             **proc_sample(s.pid)} for s in services]


def recover(services, url, baseline, cfg):
    """After the storm, on the same processes: ready, 100 x 200, same pids."""
    s2 = services[-1]
    t0 = time.monotonic()
    limit = t0 + cfg["recovery_timeout_s"]
    last = {}
    ready_after = wait_ready_again(services, t0, limit, last)
    seq_t0 = time.monotonic()
    statuses = sequential_say_hello(url) if ready_after is not None else {}
    seq_s = time.monotonic() - seq_t0
    # Connections the storm opened are closed: service2's fds near the baseline.
    fds_limit = baseline["fds"][s2.label] + 50
    fds_now = wait_fds(s2, fds_limit, limit)
    return {
        "ready_after_s": ready_after, "readyz_last": last,
        "sequential_statuses": statuses, "sequential_s": round(seq_s, 2),
        "fds_service2": fds_now, "fds_service2_baseline": baseline["fds"][s2.label],
        "fds_service2_limit": fds_limit,
        "processes": process_rows(services, baseline),
    }
