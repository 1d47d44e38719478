"""Overload and soak check of service1 and service2, as shipped: `make stress`.

1. Builds the release binaries and makes throw-away certificates, raises
   the open-file limit, starts service1 x2 (127.0.0.2, .3, one gRPC port)
   and service2 (static:/// target), mTLS on, JSON logs to files, and waits
   until they are ready.
2. The storm (STRESS_STORM_SECONDS, 60 s; storm.py): at the same time
   - oha with 2,000 connections on service2's say-hello,
   - 200 slowloris connections that send a request head one byte a second
     and never finish it (plus two small variant groups: connections that
     send nothing, and connections that trickle the HTTP/2 preface),
   - 20 clients sending a 64 KiB header in a loop (they must get 431),
   - 10 well-behaved keep-alive clients at a modest rate that honour
     `503 + Retry-After` (their success rate is the headline figure),
   while every service process's VmRSS and open fds are sampled each second.
3. Recovery, same processes (recovery.py): /readyz on all, 100 sequential
   say-hello all 200, the same pids (same start times), service2's open fds
   back near the baseline.
4. Exhaustion on fresh processes (STRESS_EXHAUST_SECONDS, 100 s;
   exhaust.py): idle HTTP/2 connections, Watch streams and held health
   calls on every admin port, probes every second, then SIGTERM.
5. Hostile clients on fresh processes (STRESS_HOSTILE_SECONDS, 40 s;
   hostile.py, issue 26): zero-window HTTP/2 streams, HTTP/1 that never
   reads, silent connections past MAX_CONNECTIONS, half TLS handshakes past
   MAX_TLS_HANDSHAKES, mTLS without a preface, all under full load (oha on
   say-hello) with probes every second; each released in time, the caps
   held, only 200s for the load, and every process under the chart's 64 MiB.
6. A soak on fresh processes (STRESS_SOAK_SECONDS, 600 s; soak.py): oha at
   500 req/s over 20 connections; RSS every 10 s; flat RSS and zero errors.
7. Gray failure on fresh processes, service1 x3 (gray.py): oha in a closed
   loop while one replica is frozen (SIGSTOP, STRESS_GRAY_FREEZE_SECONDS)
   and resumed; then, on fresh processes again, while one answers 200 ms
   late through a relay (relay.py). Zero errors, no request over 2 s, the
   frozen replica ejected and taken back, the slow one avoided.
8. results/stress-<UTC>/stress.json and stress.md, a printed summary, and a
   last line `stress: N passed, N failed`.

STRESS_PHASES (e.g. `gray`; default all: storm,exhaust,hostile,soak,gray) runs
only those phases. Python 3 standard library and oha only. Loopback only.
Every loop and every wait is bounded in count and time; every process
started is stopped (by pid: SIGTERM, then SIGKILL after a bounded wait)
before exit.

Exit status: 0 every check passed; 1 a check failed; 2 setup failed (build,
load generator, a service that does not start, bad settings); 130
interrupted. See stress/README.md.
"""

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from loadtools.common import logger, run_main, settings_doc, stop_on_signals, utc_stamp
from loadtools.loadgen import check_timeout_flags, ensure_oha
from loadtools.procfs import loadavg, proc_sample, proc_start_ticks
from loadtools.services import count_and_gzip, start_topology, stop_all
from loadtools.stress import exhaust, gray, hostile
from loadtools.stress.checks import summarize
from loadtools.stress.limits import (CUTOFF_SLACK_S, GRAY_REPLICAS, GRAY_WARMUP_S,
                                     HEADER_READ_TIMEOUT_S, REPLICAS)
from loadtools.stress.recovery import recover
from loadtools.stress.report import markdown
from loadtools.stress.settings import raise_fd_limit, settings
from loadtools.stress.soak import soak_async
from loadtools.stress.storm import storm_async
from loadtools.toolchain import build, machine_info, make_certs

log = logger("stress")


def start(certs, logdir, cfg, phase):
    logdir.mkdir(parents=True)
    log(f"{phase}: starting service1 x{REPLICAS} + service2")
    return start_topology("say-hello", REPLICAS, certs, logdir, cfg)


def finish(services):
    """Stop the processes; a row for each, with its log's line counts."""
    stop_all(services)
    out = []
    for s in services:
        p = {"process": s.label, "service": s.kind, "pid": s.pid, "addr": s.addr,
             "port": s.port, "admin_port": s.admin_port, "exit_code": s.exit_code}
        try:
            p.update(count_and_gzip(s.logfile))
        except OSError:
            pass
        out.append(p)
    return out


class Phases:
    """Runs the phases in order, each on its own processes, and always stops them."""

    def __init__(self, doc, certs, logroot, oha, cfg):
        self.doc, self.certs, self.logroot, self.oha, self.cfg = doc, certs, logroot, oha, cfg
        self.services = []
        self.relays = []  # the gray phase's relay, stopped with the processes

    def start(self, name, phase):
        self.services, url = start(self.certs, self.logroot / name, self.cfg, phase)
        return url

    def finish(self, name):
        self.doc["processes"][name] = finish(self.services)
        self.services = []

    def storm_and_recovery(self):
        url = self.start("storm", "storm")
        baseline = {"start": {s.label: proc_start_ticks(s.pid) for s in self.services},
                    "fds": {s.label: proc_sample(s.pid)["fds"] for s in self.services}}
        self.doc["storm"] = asyncio.run(storm_async(self.services, url, self.oha, self.cfg))
        log("storm over; recovery")
        self.doc["recovery"] = recover(self.services, url, baseline, self.cfg)
        self.finish("storm")

    def exhaustion(self):
        """On fresh processes, so their peak memory is this phase's."""
        self.start("exhaust", "exhaustion")
        self.doc["exhaust"] = asyncio.run(exhaust.run(self.services, self.cfg))
        self.finish("exhaust")

    def hostile(self):
        """On fresh processes, so their peak memory is this phase's."""
        url = self.start("hostile", "hostile")
        self.doc["hostile"] = asyncio.run(hostile.run(self.services, url, self.certs, self.oha,
                                                      self.cfg))
        self.finish("hostile")

    def soak(self):
        """On fresh processes: the storm's retained heap would hide slow growth."""
        url = self.start("soak", "soak")
        self.doc["soak"] = asyncio.run(soak_async(self.services, url, self.oha, self.cfg))
        self.finish("soak")

    def gray(self):
        """On fresh processes, twice: a frozen replica, then a slow one."""
        name = "gray-frozen"
        self.services, url, _, _ = gray.start(self.certs, self.logroot / name, self.cfg,
                                              self.relays, slow=False)
        self.doc["gray"] = {"frozen": asyncio.run(gray.frozen(self.services, url, self.oha,
                                                              self.cfg))}
        gray.resume_all(self.services)
        self.doc["gray"]["frozen"]["service2_log"] = gray.replica_events(self.services[-1].logfile)
        self.finish(name)
        name = "gray-slow"
        self.services, url, relay, targets = gray.start(self.certs, self.logroot / name,
                                                        self.cfg, self.relays, slow=True)
        self.doc["gray"]["slow"] = asyncio.run(gray.slow(self.services, url, self.oha, self.cfg,
                                                         relay, targets[-1]))
        self.doc["gray"]["slow"]["service2_log"] = gray.replica_events(self.services[-1].logfile)
        self.finish(name)
        self.stop_relays()

    def stop_relays(self):
        for r in self.relays:
            r.stop()
        self.relays = []

    def run(self):
        phases = self.cfg["phases"]
        try:
            if "storm" in phases:
                self.storm_and_recovery()
            if "exhaust" in phases and self.cfg["exhaust_s"]:
                self.exhaustion()
            if "hostile" in phases:
                self.hostile()
            if "soak" in phases:
                self.soak()
            if "gray" in phases:
                self.gray()
        finally:
            if self.services:
                gray.resume_all(self.services)  # a stopped process cannot act on SIGTERM
                stop_all(self.services)
            self.stop_relays()


def expected_seconds(cfg):
    """Roughly how long the phases asked for take, start-ups included."""
    phases = cfg["phases"]
    return (("storm" in phases) * (cfg["storm_s"] + 20)
            + ("exhaust" in phases) * (cfg["exhaust_s"] + 10 if cfg["exhaust_s"] else 0)
            + ("hostile" in phases) * (cfg["hostile_s"] + 15)
            + ("soak" in phases) * (cfg["soak_s"] + 10)
            + ("gray" in phases) * (2 * GRAY_WARMUP_S + cfg["gray_freeze_s"] + 2 * cfg["gray_s"]
                                    + 20))


def new_doc(stamp, machine, fd_info, cfg):
    return {"timestamp": stamp, "machine": machine, "fd_limit": fd_info,
            "settings": settings_doc(cfg, ("cargo", "oha", "name")),
            "constants": {"header_read_timeout_s": HEADER_READ_TIMEOUT_S,
                          "cutoff_slack_s": CUTOFF_SLACK_S, "replicas": REPLICAS,
                          "gray_replicas": GRAY_REPLICAS, "gray_warmup_s": GRAY_WARMUP_S},
            "processes": {}}


def write_results(doc, outdir, cfg, started):
    """Checks, stress.md and stress.json; prints the summary. Returns the exit status."""
    checks = summarize(doc, cfg)
    doc["checks"] = checks
    doc["machine"]["loadavg_at_end"] = loadavg()
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


def main():
    stop_on_signals()
    started = time.monotonic()
    cfg = settings()
    fd_info = raise_fd_limit(cfg)
    build(cfg)
    oha, oha_version = ensure_oha(cfg)
    check_timeout_flags(oha)
    stamp = utc_stamp()
    outdir = cfg["results_dir"] / f"stress-{stamp}"
    outdir.mkdir(parents=True, exist_ok=False)
    doc = new_doc(stamp, machine_info(oha_version), fd_info, cfg)
    log(f"results in {outdir}; phases {', '.join(cfg['phases'])}; about "
        f"{expected_seconds(cfg):.0f} s")
    certs = Path(tempfile.mkdtemp(prefix="stress-certs-"))
    try:
        make_certs(certs)
        Phases(doc, certs, outdir / "logs", oha, cfg).run()
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    return write_results(doc, outdir, cfg, started)


if __name__ == "__main__":
    run_main(main, log)
