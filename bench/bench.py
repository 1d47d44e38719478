#!/usr/bin/env python3
"""Load benchmark of service1 and service2, as shipped: `make bench`.

Builds the release binaries, makes throw-away certificates, installs the
load generator (oha) when missing, then for each run starts fresh service
processes on loopback (mTLS on, JSON logs to files), waits until they are
ready, warms up, measures a fixed-duration oha run, and reads each service
process's CPU time and memory from /proc around the measured window.

Writes results/bench-<UTC timestamp>/{results.json,results.md,latency.svg,
logs/} and points results/latest at it. See bench/README.md.

Python 3 standard library only. Every process it starts is stopped before it
exits (SIGTERM, then SIGKILL after a bounded wait); every wait is bounded.

Exit status: 0 done; 1 a target missed and BENCH_STRICT=1; 2 setup failed
(build, load generator, a service that does not start); 130 interrupted.
"""

import gzip
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "bench" / ".tools"
RELEASE = REPO / "target" / "release"
OHA_VERSION = "1.16.0"  # flags below checked against this version's --help
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# Targets of issue 7, as the harness checks them.
TARGET_CPU_US = 60.0  # say-hello CPU per request, service1 + service2
TARGET_CPU_RATIO = 2.5  # ... divided by /api/v1/name's (service1)
TARGET_RSS_MIB = 20.0  # VmRSS of each service process after its run
TARGET_P99_MS = 2.0  # p99 at the fixed rate


class SetupError(Exception):
    """The benchmark cannot run: exit status 2."""


class Stop(BaseException):
    """SIGTERM/SIGHUP while running: unwind so `finally` stops the services."""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- settings


def env_seconds(name, default, lo=0.5, hi=3600.0):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    text = raw[:-1] if raw.endswith("s") and not raw.endswith("ms") else raw
    scale = 1.0
    if text.endswith("ms"):
        text, scale = text[:-2], 0.001
    try:
        value = float(text) * scale
    except ValueError:
        raise SetupError(f"{name}={raw!r}: expected seconds, e.g. 10 or 10s")
    if not lo <= value <= hi:
        raise SetupError(f"{name}={raw!r}: must be between {lo:g}s and {hi:g}s")
    return value


def env_ints(name, default, lo, hi):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        values = [int(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        raise SetupError(f"{name}={raw!r}: expected integers separated by commas")
    if not values or any(not lo <= v <= hi for v in values):
        raise SetupError(f"{name}={raw!r}: each value must be between {lo} and {hi}")
    return values


def settings():
    s = {
        "duration_s": env_seconds("BENCH_DURATION", 10.0),
        "warmup_s": env_seconds("BENCH_WARMUP", 2.0, lo=0.0, hi=600.0),
        "concurrency": env_ints("BENCH_CONCURRENCY", [10, 100], 1, 1000),
        "rate": env_ints("BENCH_RATE", [2000], 1, 1_000_000)[0],
        "rate_concurrency": env_ints("BENCH_RATE_CONCURRENCY", [100], 1, 1000)[0],
        "replicas": env_ints("BENCH_REPLICAS", [1, 3], 1, 3),
        "ready_timeout_s": env_seconds("BENCH_READY_TIMEOUT", 30.0, lo=1.0, hi=600.0),
        "name": os.environ.get("BENCH_NAME", "test"),
        "strict": os.environ.get("BENCH_STRICT", "") == "1",
        "results_dir": Path(os.environ.get("BENCH_RESULTS_DIR", str(REPO / "results"))),
        "cargo": os.environ.get("CARGO", "cargo"),
        "oha": os.environ.get("OHA", ""),
    }
    if not s["name"] or len(s["name"].encode()) > 1024:
        raise SetupError("BENCH_NAME must be 1-1024 bytes")
    return s


# ------------------------------------------------------------------ helpers


def run_bounded(cmd, timeout, **kw):
    """subprocess.run with a time limit that also kills the child if we unwind."""
    proc = subprocess.Popen(cmd, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise SetupError(f"{cmd[0]} took longer than {timeout:g}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode, out, err


def build(cfg):
    cmd = [cfg["cargo"], "build", "--release", "-p", "service1", "-p", "service2", "-p", "certgen"]
    log(" ".join(cmd))
    code, _, _ = run_bounded(cmd, 3600, cwd=REPO)
    if code != 0:
        raise SetupError(f"cargo build failed (exit {code})")


OHA_FLAGS = ["--no-tui", "--output-format", "-z", "-c", "-q", "-w", "--latency-correction"]


def ensure_oha(cfg):
    if cfg["oha"]:
        oha = cfg["oha"]
    else:
        oha = str(TOOLS / "bin" / "oha")
        if not os.access(oha, os.X_OK):
            cmd = [cfg["cargo"], "install", "oha", "--version", OHA_VERSION, "--locked",
                   "--root", str(TOOLS)]
            log(" ".join(cmd) + "  (once; cached in bench/.tools)")
            code, _, _ = run_bounded(cmd, 3600, cwd=REPO)
            if code != 0:
                raise SetupError(f"cargo install oha failed (exit {code})")
    code, out, _ = run_bounded([oha, "--version"], 30, stdout=subprocess.PIPE, text=True)
    if code != 0:
        raise SetupError(f"{oha} --version failed")
    code, help_text, _ = run_bounded([oha, "--help"], 30, stdout=subprocess.PIPE, text=True)
    missing = [f for f in OHA_FLAGS if f not in help_text]
    if missing:
        raise SetupError(f"{oha} lacks flags {missing}; use oha {OHA_VERSION}")
    return oha, out.strip()


def read_text(path, default=""):
    try:
        return Path(path).read_text()
    except OSError:
        return default


def machine_info(oha_version):
    cpu_model = ""
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break

    def git(*args):
        try:
            code, out, _ = run_bounded(["git", *args], 30, cwd=REPO,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            return out.strip() if code == 0 else ""
        except (OSError, SetupError):
            return ""

    mem_total = ""
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_total = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    uname = os.uname()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
        "mem_total": mem_total,
        "oha_version": oha_version,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": sys.version.split()[0],
        "loadavg_at_start": read_text("/proc/loadavg").split()[:3],
    }


def free_port(hosts, taken, attempts=50):
    """A TCP port free on every address in `hosts` right now (bounded tries)."""
    for _ in range(attempts):
        socks = []
        try:
            first = socket.socket()
            socks.append(first)
            first.bind((hosts[0], 0))
            port = first.getsockname()[1]
            if port in taken:
                continue
            for host in hosts[1:]:
                s = socket.socket()
                socks.append(s)
                s.bind((host, port))
            taken.add(port)
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SetupError(f"no free port on {hosts} after {attempts} tries")


def proc_cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (/proc/PID/stat 14 and 15)."""
    stat = read_text(f"/proc/{pid}/stat")
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def proc_mem_kib(pid):
    out = {}
    for line in read_text(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def host_cpu():
    """Host-wide jiffies from /proc/stat: (busy, steal, total)."""
    first = read_text("/proc/stat").splitlines()[0].split()[1:]
    v = [int(x) for x in first]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    steal = v[7] if len(v) > 7 else 0
    total = sum(v[:8])
    return total - idle - steal, steal, total


def http_get(url, timeout=1.0):
    req = urllib.request.Request(url, headers={"X-Request-ID": "bench-probe"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ----------------------------------------------------------------- services


class Service:
    def __init__(self, label, binary, env, addr, port, admin_port, logfile):
        self.label, self.addr, self.port, self.admin_port = label, addr, port, admin_port
        self.logfile = logfile
        self.kind = binary.name
        self._out = open(logfile, "wb")
        self.proc = subprocess.Popen(
            [str(binary)], env=env, stdout=self._out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=str(logfile.parent),
            start_new_session=True,  # Ctrl-C reaches us, and we stop them in order
        )
        self.pid = self.proc.pid
        self.exit_code = None

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, lines=15):
        self._out.flush()
        text = read_text(self.logfile)
        return "\n".join(text.splitlines()[-lines:])

    def close(self):
        self._out.close()


def stop_all(services, grace=15.0):
    for s in services:
        if s.alive():
            try:
                s.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for s in services:
        try:
            s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{s.label} (pid {s.pid}) still up {grace:g}s after SIGTERM: SIGKILL")
            s.proc.kill()
            s.proc.wait(timeout=10)
        s.exit_code = s.proc.returncode
        s.close()


def service_env(extra):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LOG_FORMAT": "json",
        "RUST_LOG": "info",
        "TLS_MODE": "mtls",
        "DRAIN_DELAY": "0s",
    }
    env.update(extra)
    return env


def start_topology(target, replicas, certs, logdir, cfg):
    """Start service1 x replicas (+ service2 for say-hello); return (services, url)."""
    taken = set()
    addrs = [f"127.0.0.{2 + i}" for i in range(replicas)]
    grpc_port = free_port(addrs, taken)
    services = []
    try:
        for i, addr in enumerate(addrs):
            port, admin = free_port([addr], taken), free_port([addr], taken)
            env = service_env({
                "BIND_ADDR": addr, "PORT": str(port), "GRPC_PORT": str(grpc_port),
                "ADMIN_PORT": str(admin),
                "TLS_CERT": str(certs / "service1.crt"), "TLS_KEY": str(certs / "service1.key"),
                "TLS_CA": str(certs / "ca.crt"),
            })
            services.append(Service(f"service1[{i}]", RELEASE / "service1", env, addr, port,
                                    admin, logdir / f"service1-{i}.log"))
        if target == "say-hello":
            addr = "127.0.0.1"
            port, admin = free_port([addr], taken), free_port([addr], taken)
            channel = "static:///" + ",".join(f"{a}:{grpc_port}" for a in addrs)
            env = service_env({
                "BIND_ADDR": addr, "PORT": str(port), "ADMIN_PORT": str(admin),
                "SERVICE1_CHANNEL": channel, "TLS_SERVER_NAME": "service1",
                "TLS_CERT": str(certs / "service2.crt"), "TLS_KEY": str(certs / "service2.key"),
                "TLS_CA": str(certs / "ca.crt"),
            })
            services.append(Service("service2", RELEASE / "service2", env, addr, port, admin,
                                    logdir / "service2.log"))
            url = f"http://{addr}:{port}/api/v1/say-hello?name={cfg['name']}"
        else:
            url = f"http://{addrs[0]}:{services[0].port}/api/v1/name?name={cfg['name']}"
        wait_ready(services, replicas, cfg["ready_timeout_s"])
        code, body = http_get(url, timeout=5.0)
        if code != 200:
            raise SetupError(f"smoke request {url} answered {code}: {body[:200]!r}")
        return services, url
    except BaseException:
        stop_all(services)
        raise


def wait_ready(services, replicas, timeout):
    deadline = time.monotonic() + timeout
    pending = list(services)
    last = {}
    while pending:
        for s in list(pending):
            if not s.alive():
                raise SetupError(f"{s.label} exited with {s.proc.returncode} before ready:\n"
                                 f"{s.log_tail()}")
            try:
                code, body = http_get(f"http://{s.addr}:{s.admin_port}/readyz", timeout=0.5)
            except OSError as e:
                last[s.label] = str(e)
                continue
            last[s.label] = body[:300]
            if code != 200:
                continue
            if s.kind == "service2":
                ready = json.loads(body).get("service1_endpoints", {}).get("ready")
                if ready != replicas:
                    continue
            pending.remove(s)
        if not pending:
            return
        if time.monotonic() > deadline:
            detail = "; ".join(f"{s.label}: {last.get(s.label)!r}" for s in pending)
            raise SetupError(f"not ready after {timeout:g}s: {detail}")
        time.sleep(0.1)


# -------------------------------------------------------------------- load


def oha_cmd(oha, url, seconds, concurrency, rate):
    cmd = [oha, "--no-tui", "--output-format", "json", "-z", f"{round(seconds * 1000)}ms",
           "-c", str(concurrency),
           # Wait for the requests in flight at the deadline: on HTTP/1 oha would
           # otherwise abort them and count them as errors.
           "-w"]
    if rate:
        # Latencies from each request's scheduled send time (no coordinated omission).
        cmd += ["-q", str(rate), "--latency-correction"]
    return cmd + [url]


def run_oha(oha, url, seconds, concurrency, rate):
    cmd = oha_cmd(oha, url, seconds, concurrency, rate)
    code, out, err = run_bounded(cmd, seconds + 60, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    if code != 0:
        raise SetupError(f"oha failed (exit {code}): {err.strip()[:500]}")
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise SetupError(f"oha printed no JSON: {out[:300]!r} {err[:300]!r}")


def summarize_oha(report):
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


def count_and_gzip(path):
    """Count a log's lines and access lines, then replace it with path.gz."""
    lines = access = 0
    size = path.stat().st_size
    with open(path, "rb") as src, gzip.open(f"{path}.gz", "wb", compresslevel=1) as dst:
        for line in src:
            lines += 1
            if b'"http request served"' in line or b'"grpc call served"' in line:
                access += 1
            dst.write(line)
    path.unlink()
    return {"log_lines": lines, "access_lines": access, "log_bytes": size,
            "log_file": f"{path.name}.gz"}


def measure(run, oha, certs, logroot, cfg):
    rid = run["id"]
    logdir = logroot / rid
    logdir.mkdir(parents=True)
    log(f"{rid}: starting {run['replicas']}x service1"
        + (" + service2" if run["target"] == "say-hello" else ""))
    services, url = start_topology(run["target"], run["replicas"], certs, logdir, cfg)
    try:
        if cfg["warmup_s"] > 0:
            warm = summarize_oha(run_oha(oha, url, cfg["warmup_s"], run["concurrency"], run["rate"]))
        else:
            warm = None
        loadavg = read_text("/proc/loadavg").split()[:3]
        cpu0 = {s.label: proc_cpu_ticks(s.pid) for s in services}
        host0 = host_cpu()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        report = run_oha(oha, url, cfg["duration_s"], run["concurrency"], run["rate"])
        t1 = time.monotonic()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        host1 = host_cpu()
        cpu1 = {s.label: proc_cpu_ticks(s.pid) for s in services}
        mem = {s.label: proc_mem_kib(s.pid) for s in services}
        dead = [s.label for s in services if not s.alive()]
        if dead:
            raise SetupError(f"{rid}: {dead} exited during the run")
    finally:
        stop_all(services)

    res = summarize_oha(report)
    n = res["completed"]
    procs = []
    for s in services:
        cpu_s = (cpu1[s.label] - cpu0[s.label]) / CLK_TCK
        p = {
            "process": s.label, "service": s.kind, "pid": s.pid, "addr": s.addr,
            "cpu_s": cpu_s,
            "cpu_us_per_req": cpu_s / n * 1e6 if n else None,
            "peak_rss_mib": mem[s.label].get("VmHWM", 0) / 1024,
            "rss_after_mib": mem[s.label].get("VmRSS", 0) / 1024,
            "exit_code": s.exit_code,
        }
        p.update(count_and_gzip(s.logfile))
        procs.append(p)

    def cpu_of(kind):
        vals = [p["cpu_us_per_req"] for p in procs if p["service"] == kind]
        return sum(vals) if vals and None not in vals else None

    busy = host1[0] - host0[0]
    steal = host1[1] - host0[1]
    total = host1[2] - host0[2]
    loadgen_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    out = dict(run)
    out.update(res)
    out.update({
        "url": url.split("?")[0],
        "oha_command": oha_cmd("oha", url, cfg["duration_s"], run["concurrency"], run["rate"]),
        "measured_window_s": t1 - t0,
        "processes": procs,
        "cpu_us_per_req": {"service1": cpu_of("service1"), "service2": cpu_of("service2")},
        "loadgen_cpu_us_per_req": loadgen_cpu / n * 1e6 if n else None,
        "host": {"busy_pct": 100.0 * busy / total if total else None,
                 "steal_pct": 100.0 * steal / total if total else None,
                 "loadavg_before": loadavg},
        "warmup": warm and {k: warm[k] for k in ("completed", "errors", "rps")},
    })
    c = out["cpu_us_per_req"]
    out["cpu_us_per_req"]["total"] = (c["service1"] or 0) + (c["service2"] or 0) if n else None
    unclean = [p["process"] for p in procs if p["exit_code"] != 0]
    if unclean:
        out["note"] = f"non-zero exit after SIGTERM: {unclean}"
    lat = out["latency_ms"]
    log(f"{rid}: {out['rps']:.0f} req/s, p50 {fmt(lat['p50'])} p99 {fmt(lat['p99'])} ms, "
        f"errors {out['errors']}, CPU {fmt(c['total'], 1)} µs/req (s1 {fmt(c['service1'], 1)}"
        f", s2 {fmt(c['service2'], 1)})")
    return out


def plan(cfg):
    loads = [{"mode": f"c{c}", "concurrency": c, "rate": None} for c in cfg["concurrency"]]
    loads.append({"mode": f"{cfg['rate']}rps", "concurrency": cfg["rate_concurrency"],
                  "rate": cfg["rate"]})
    runs = [dict(target="name", replicas=1, id=f"name-1x-{ld['mode']}", **ld) for ld in loads]
    for r in cfg["replicas"]:
        runs += [dict(target="say-hello", replicas=r, id=f"say-hello-{r}x-{ld['mode']}", **ld)
                 for ld in loads]
    return runs


# ----------------------------------------------------------------- targets


def add_ratios(runs):
    ref = {r["mode"]: r for r in runs if r["target"] == "name"}
    for r in runs:
        if r["target"] != "say-hello":
            continue
        base = ref.get(r["mode"])
        mine = r["cpu_us_per_req"]["total"]
        theirs = base and base["cpu_us_per_req"]["service1"]
        r["cpu_ratio_vs_name"] = mine / theirs if mine is not None and theirs else None


def check_targets(runs, cfg):
    rows = []

    def row(target, run, value, limit, unit, ok):
        rows.append({"target": target, "run": run, "value": value, "limit": limit,
                     "unit": unit, "pass": bool(ok)})

    for r in runs:
        if r["target"] != "say-hello":
            continue
        v = r["cpu_us_per_req"]["total"]
        row("say-hello CPU/request (s1+s2)", r["id"], v, TARGET_CPU_US, "µs",
            v is not None and v <= TARGET_CPU_US)
    for r in runs:
        if r["target"] != "say-hello":
            continue
        v = r.get("cpu_ratio_vs_name")
        row("say-hello CPU/request ÷ name's", r["id"], v, TARGET_CPU_RATIO, "×",
            v is not None and v <= TARGET_CPU_RATIO)
    for kind in ("service1", "service2"):
        procs = [(p["rss_after_mib"], r["id"], p["process"]) for r in runs
                 for p in r["processes"] if p["service"] == kind]
        if procs:
            v, rid, label = max(procs)
            row(f"{kind} RSS after the run (max of {len(procs)} processes)",
                f"{rid} {label}", v, TARGET_RSS_MIB, "MiB", v <= TARGET_RSS_MIB)
    for r in runs:
        if r["target"] == "say-hello" and r["rate"]:
            v = r["latency_ms"]["p99"]
            row(f"p99 at {r['rate']} req/s", r["id"], v, TARGET_P99_MS, "ms",
                v is not None and v <= TARGET_P99_MS)
    errs = sum(r["errors"] for r in runs)
    bad = [r["id"] for r in runs if r["errors"]]
    row("zero errors (non-200 + connection)", ", ".join(bad) or "all runs", errs, 0, "", errs == 0)
    if cfg["rate"] != 2000 or cfg["duration_s"] < 10:
        for x in rows:
            x["note"] = "non-default settings"
    return rows


# ------------------------------------------------------------------ output


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def load_desc(r):
    return (f"{r['rate']:,} req/s, c{r['concurrency']}" if r["rate"]
            else f"c{r['concurrency']}")


def markdown(doc):
    m, cfg = doc["machine"], doc["settings"]
    runs = doc["runs"]
    out = [f"# Benchmark {doc['timestamp']}", ""]
    out.append(f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['mem_total']}, {m['kernel']}")
    out.append(f"- Commit: `{m['git_commit'][:12]}`{' (uncommitted changes)' if m['git_dirty'] else ''}"
               f"; load generator: {m['oha_version']} (HTTP/1.1, keep-alive, on the same cores)")
    out.append(f"- Each run: fresh processes, mTLS, `LOG_FORMAT=json` to files; "
               f"{cfg['warmup_s']:g} s warm-up, then {cfg['duration_s']:g} s measured. "
               f"Load average at start: {' '.join(m['loadavg_at_start'])}")
    out.append("- CPU µs/request: utime+stime of each service process (/proc/PID/stat) over the "
               "measured window ÷ requests completed in it; s1 sums the replicas. RSS: VmHWM "
               "(peak) and VmRSS after the run (/proc/PID/status), largest replica for s1. "
               "oha µs/req: the load generator's own CPU. Host busy/steal: /proc/stat.")
    out += ["", "## Runs", ""]
    out.append("| run | endpoint | s1 replicas | load | req/s | p50 ms | p90 ms | p99 ms | "
               "p99.9 ms | errors | CPU µs/req s1 | s2 | s1+s2 | ÷ name | peak RSS MiB s1 / s2 "
               "| RSS after MiB s1 / s2 | oha µs/req | host busy / steal % |")
    out.append("|" + "---|" * 18)
    for r in runs:
        c, lat = r["cpu_us_per_req"], r["latency_ms"]

        def rss(key, kind):  # the largest replica's; each one is under "Per process"
            vals = [p[key] for p in r["processes"] if p["service"] == kind]
            return f"{max(vals):.1f}" if vals else "–"

        out.append(
            f"| {r['id']} | {r['url'].split('/api/v1/')[1]} | {r['replicas']} | {load_desc(r)} "
            f"| {r['rps']:,.0f} | {fmt(lat['p50'], 3)} | {fmt(lat['p90'], 3)} | {fmt(lat['p99'], 3)} "
            f"| {fmt(lat['p99.9'], 3)} | {r['errors']} | {fmt(c['service1'], 1)} "
            f"| {fmt(c['service2'], 1)} | {fmt(c['total'], 1)} | {fmt(r.get('cpu_ratio_vs_name'))} "
            f"| {rss('peak_rss_mib', 'service1')} / {rss('peak_rss_mib', 'service2')} "
            f"| {rss('rss_after_mib', 'service1')} / {rss('rss_after_mib', 'service2')} "
            f"| {fmt(r['loadgen_cpu_us_per_req'], 1)} "
            f"| {fmt(r['host']['busy_pct'], 0)} / {fmt(r['host']['steal_pct'], 0)} |")
    out += ["", "## Targets", ""]
    out.append("| target | run | measured | limit | result |")
    out.append("|---|---|---|---|---|")
    for t in doc["targets"]:
        unit = f" {t['unit']}" if t["unit"] else ""
        out.append(f"| {t['target']} | {t['run']} | {fmt(t['value'])}{unit} | "
                   f"≤ {fmt(t['limit'])}{unit} | {'PASS' if t['pass'] else '**FAIL**'} |")
    if any(t.get("note") for t in doc["targets"]):
        out += ["", f"Note: non-default settings (duration {cfg['duration_s']:g} s, rate "
                f"{cfg['rate']} req/s); the targets are meant for the defaults."]
    sh = [r for r in runs if r["target"] == "say-hello" and r.get("cpu_ratio_vs_name")]
    if sh:
        out += ["", f"Median say-hello ÷ name CPU/request over {len(sh)} runs: "
                f"{median(r['cpu_ratio_vs_name'] for r in sh):.2f}×."]
    out += ["", "## Per process", ""]
    out.append("| run | process | pid | CPU s | CPU µs/req | peak RSS MiB | RSS after MiB "
               "| log lines (access) | exit |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        for p in r["processes"]:
            out.append(f"| {r['id']} | {p['process']} {p['addr']} | {p['pid']} | {p['cpu_s']:.2f} "
                       f"| {fmt(p['cpu_us_per_req'], 1)} | {p['peak_rss_mib']:.1f} "
                       f"| {p['rss_after_mib']:.1f} | {p['log_lines']:,} ({p['access_lines']:,}) "
                       f"| {p['exit_code']} |")
    out += ["", "Chart: [latency.svg](latency.svg). Raw numbers: [results.json](results.json). "
            "Service logs: `logs/<run>/` (gzip; they include the warm-up)."]
    return "\n".join(out) + "\n"


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_chart(runs, title):
    keys = [("p50", "#4e79a7"), ("p90", "#59a14f"), ("p99", "#f28e2b"), ("p99.9", "#e15759")]
    vals = [r["latency_ms"][k] for r in runs for k, _ in keys if r["latency_ms"][k]]
    lo = 10 ** math.floor(math.log10(max(min(vals), 1e-3))) if vals else 0.01
    hi = 10 ** math.ceil(math.log10(max(max(vals), TARGET_P99_MS * 1.01))) if vals else 10
    if hi <= lo:
        hi = lo * 10
    left, right, top, bottom = 70, 20, 60, 110
    group_w, bar_w = 112, 20
    width = left + right + group_w * max(len(runs), 1)
    height = 460
    plot_h = height - top - bottom

    def y(v):
        v = min(max(v, lo), hi)
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{left}" y="22" font-size="15" font-weight="bold">{esc(title)}</text>',
         f'<text x="{left}" y="40" fill="#555">latency percentiles per run, ms, log scale; '
         f'dashed: p99 target at the fixed rate ({TARGET_P99_MS:g} ms)</text>']
    decade = lo
    while decade <= hi * 1.0001:
        for mult in (1, 2, 5):
            v = decade * mult
            if v > hi * 1.0001:
                break
            yy = y(v)
            strong = mult == 1
            s.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" '
                     f'stroke="{"#bbb" if strong else "#eee"}"/>')
            s.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" '
                     f'fill="{"#333" if strong else "#999"}">{v:g}</text>')
        decade *= 10
    for gi, r in enumerate(runs):
        x0 = left + gi * group_w + (group_w - bar_w * len(keys)) / 2
        for ki, (k, color) in enumerate(keys):
            v = r["latency_ms"][k]
            if not v:
                continue
            yy = y(v)
            s.append(f'<rect x="{x0 + ki * bar_w:.1f}" y="{yy:.1f}" width="{bar_w - 2}" '
                     f'height="{top + plot_h - yy:.1f}" fill="{color}">'
                     f'<title>{esc(r["id"])} {k}: {v:.3f} ms</title></rect>')
        cx = left + gi * group_w + group_w / 2
        lines = [r["target"], f"{r['replicas']}× service1", load_desc(r)]
        for li, text in enumerate(lines):
            s.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16 + 13 * li}" '
                     f'text-anchor="middle">{esc(text)}</text>')
    ty = y(TARGET_P99_MS)
    s.append(f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" '
             f'stroke="#e15759" stroke-dasharray="6,4"/>')
    s.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#333"/>')
    lx = left
    for k, color in keys:
        s.append(f'<rect x="{lx}" y="{height - 28}" width="12" height="12" fill="{color}"/>')
        s.append(f'<text x="{lx + 16}" y="{height - 18}">{k}</text>')
        lx += 70
    s.append("</svg>")
    return "\n".join(s) + "\n"


def point_latest(results_dir, outdir):
    link = results_dir / "latest"
    tmp = results_dir / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(outdir.name, tmp)
    os.replace(tmp, link)


# -------------------------------------------------------------------- main


def stop_on_signals():
    """SIGTERM and SIGHUP raise Stop, so `finally` blocks stop the services."""
    def on_signal(signum, _frame):
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def main():
    stop_on_signals()

    started = time.monotonic()
    cfg = settings()
    build(cfg)
    oha, oha_version = ensure_oha(cfg)
    prepared = time.monotonic()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results_dir = cfg["results_dir"]
    outdir = results_dir / f"bench-{stamp}"
    outdir.mkdir(parents=True, exist_ok=False)
    (outdir / "logs").mkdir()
    machine = machine_info(oha_version)
    certs = Path(tempfile.mkdtemp(prefix="bench-certs-"))
    runs = []
    try:
        code, _, _ = run_bounded([str(RELEASE / "certgen"), "--out", str(certs)], 60,
                                 stdout=subprocess.DEVNULL)
        if code != 0:
            raise SetupError("certgen failed")
        todo = plan(cfg)
        per_run = cfg["warmup_s"] + cfg["duration_s"]
        log(f"{len(todo)} runs of {cfg['warmup_s']:g}+{cfg['duration_s']:g} s "
            f"(about {len(todo) * (per_run + 2):.0f} s); results in {outdir}")
        for run in todo:
            runs.append(measure(run, oha, certs, outdir / "logs", cfg))
    finally:
        shutil.rmtree(certs, ignore_errors=True)

    add_ratios(runs)
    targets = check_targets(runs, cfg)
    doc = {
        "timestamp": stamp,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items()
                     if k not in ("cargo", "oha")},
        "machine": machine,
        "targets_definition": {"cpu_us_per_req_max": TARGET_CPU_US,
                               "cpu_ratio_vs_name_max": TARGET_CPU_RATIO,
                               "rss_after_mib_max": TARGET_RSS_MIB,
                               "p99_ms_at_rate_max": TARGET_P99_MS, "errors_max": 0},
        "runs": runs,
        "targets": targets,
        "all_targets_met": all(t["pass"] for t in targets),
        "elapsed_s": None,
        "build_and_tools_s": round(prepared - started, 1),
    }
    doc["machine"]["loadavg_at_end"] = read_text("/proc/loadavg").split()[:3]
    md = markdown(doc)
    (outdir / "results.md").write_text(md)
    (outdir / "latency.svg").write_text(
        svg_chart(runs, f"make bench {stamp} ({machine['nproc']} CPUs, {oha_version})"))
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    (outdir / "results.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    point_latest(results_dir, outdir)

    print(md)
    missed = [t for t in targets if not t["pass"]]
    for t in missed:
        print(f"bench: target missed: {t['target']} [{t['run']}]: {fmt(t['value'])} "
              f"(limit {fmt(t['limit'])} {t['unit']})".rstrip(), file=sys.stderr)
    log(f"done in {doc['elapsed_s']:.0f} s ({doc['build_and_tools_s']:.0f} s of it build and "
        f"tools): {outdir} (results/latest)")
    if missed and cfg["strict"]:
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as e:
        log(f"error: {e}")
        sys.exit(2)
    except (KeyboardInterrupt, Stop) as e:
        log(f"interrupted ({e or 'SIGINT'}); services stopped")
        sys.exit(130)
