"""The load generator, oha: installing and checking it, its command lines,
running it (blocking or from asyncio), and reading its JSON report."""

import asyncio
import json
import os
import subprocess

from loadtools.common import REPO, SetupError, logger, run_bounded

log = logger("bench")  # bench's message; stress prints it the same way

OHA_VERSION = "1.16.0"  # flags below checked against this version's --help
OHA_FLAGS = ["--no-tui", "--output-format", "-z", "-n", "-c", "-q", "-w", "--latency-correction"]
TIMEOUT_FLAGS = ["-t", "--connect-timeout"]  # what oha_cmd(timeouts=True) adds


def oha_home():
    """Where oha OHA_VERSION is installed: the user's cache, one directory
    per version, so that a fresh clone (as CI makes) does not build it again
    and a version bump never reuses an old binary."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "grpc-services", f"oha-{OHA_VERSION}")


def install_oha(cfg):
    """$OHA, or oha_home()/bin/oha, installed with cargo on first use."""
    if cfg["oha"]:
        return cfg["oha"]
    root = oha_home()
    oha = os.path.join(root, "bin", "oha")
    if not os.access(oha, os.X_OK):
        cmd = [cfg["cargo"], "install", "oha", "--version", OHA_VERSION, "--locked",
               "--root", root]
        log(" ".join(cmd) + f"  (once; cached in {root})")
        code, _, _ = run_bounded(cmd, 3600, cwd=REPO)
        if code != 0:
            raise SetupError(f"cargo install oha failed (exit {code})")
    return oha


def ensure_oha(cfg):
    """(path, version) of an oha that has every flag the harness uses."""
    oha = install_oha(cfg)
    code, out, _ = run_bounded([oha, "--version"], 30, stdout=subprocess.PIPE, text=True)
    if code != 0:
        raise SetupError(f"{oha} --version failed")
    code, help_text, _ = run_bounded([oha, "--help"], 30, stdout=subprocess.PIPE, text=True)
    missing = [f for f in OHA_FLAGS if f not in help_text]
    if missing:
        raise SetupError(f"{oha} lacks flags {missing}; use oha {OHA_VERSION}")
    return oha, out.strip()


def check_timeout_flags(oha):
    """The flags of oha_cmd(timeouts=True), which `make stress` uses."""
    code, text, _ = run_bounded([oha, "--help"], 30, stdout=subprocess.PIPE, text=True)
    missing = [f for f in TIMEOUT_FLAGS if f not in text]
    if code != 0 or missing:
        raise SetupError(f"{oha} lacks flags {missing}")


def oha_cmd(oha, url, seconds, concurrency, rate=None, timeouts=False):
    cmd = [oha, "--no-tui", "--output-format", "json", "-z", f"{round(seconds * 1000)}ms",
           "-c", str(concurrency),
           # Wait for the requests in flight at the deadline: on HTTP/1 oha would
           # otherwise abort them and count them as errors.
           "-w"]
    if timeouts:
        # A request or a connect that hangs ends as an error, which stress counts.
        cmd += ["-t", "20s", "--connect-timeout", "10s"]
    if rate:
        # Latencies from each request's scheduled send time (no coordinated omission).
        cmd += ["-q", str(rate), "--latency-correction"]
    return cmd + [url]


def oha_count_cmd(oha, url, requests, concurrency):
    """A fixed number of requests instead of a fixed time (instructions per request)."""
    return [oha, "--no-tui", "--output-format", "json", "-n", str(requests),
            "-c", str(concurrency), url]


def parse_report(out, err):
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise SetupError(f"oha printed no JSON: {out[:300]!r} {err[:300]!r}")


def run_oha(cmd, timeout):
    """Run an oha command to the end; its JSON report."""
    code, out, err = run_bounded(cmd, timeout, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    if code != 0:
        raise SetupError(f"oha failed (exit {code}): {err.strip()[:500]}")
    return parse_report(out, err)


async def run_oha_async(cmd, timeout):
    """run_oha, while the event loop runs other clients."""
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
    return parse_report(out, err)


def summarize_oha(report):
    """Responses by status, connection errors, req/s and latencies (ms)."""
    codes = {str(k): int(v) for k, v in (report.get("statusCodeDistribution") or {}).items()}
    conn_errors = {str(k): int(v) for k, v in (report.get("errorDistribution") or {}).items()}
    completed = sum(codes.values())
    non200 = sum(v for k, v in codes.items() if k != "200")
    total_s = float(report["summary"]["total"])
    pct = report.get("latencyPercentiles") or {}

    def ms(key):
        v = pct.get(key)
        return None if v is None else float(v) * 1000.0

    return {
        "completed": completed,
        "ok": codes.get("200", 0),
        "status_codes": codes,
        "connection_errors": conn_errors,
        "errors": non200 + sum(conn_errors.values()),
        "wall_s": total_s,
        "rps": completed / total_s if total_s > 0 else 0.0,
        "oha_rps": report["summary"].get("requestsPerSec"),
        "latency_ms": {"p50": ms("p50"), "p90": ms("p90"), "p99": ms("p99"),
                       "p99.9": ms("p99.9"), "max": (report["summary"].get("slowest") or 0) * 1000},
    }
