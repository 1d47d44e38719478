"""Readings from /proc: a process's CPU time, memory, open fds and start
time; the host's CPU split; and a sampler that reads every service process
at a fixed interval."""

import asyncio
import os
import resource
import time

from loadtools.common import read_text

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """/proc/PID/stat from field 3 on (after the command name, which may hold spaces)."""
    stat = read_text(f"/proc/{pid}/stat")
    return stat[stat.rfind(")") + 2:].split()


def proc_cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (/proc/PID/stat 14 and 15)."""
    fields = stat_fields(pid)
    return int(fields[11]) + int(fields[12])


def proc_start_ticks(pid):
    """Field 22 of /proc/PID/stat: the start time; a restarted pid differs."""
    fields = stat_fields(pid)
    return int(fields[19]) if len(fields) > 19 else None


def proc_mem_kib(pid):
    """VmHWM and VmRSS of /proc/PID/status, in KiB."""
    out = {}
    for line in read_text(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def proc_sample(pid):
    """VmRSS, VmHWM (KiB), threads and open fds of a process; None where unreadable."""
    out = {"rss_kib": None, "hwm_kib": None, "threads": None, "fds": None}
    for line in read_text(f"/proc/{pid}/status").splitlines():
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


def host_cpu():
    """Host-wide jiffies from /proc/stat: (busy, steal, total)."""
    first = read_text("/proc/stat").splitlines()[0].split()[1:]
    v = [int(x) for x in first]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    steal = v[7] if len(v) > 7 else 0
    total = sum(v[:8])
    return total - idle - steal, steal, total


def loadavg():
    """The 1, 5 and 15 minute load averages, as text."""
    return read_text("/proc/loadavg").split()[:3]


# ------------------------------------------------------------- CPU windows


def cpu_snapshot(services):
    """The CPU counters a measured window starts or ends with."""
    return {"procs": {s.label: proc_cpu_ticks(s.pid) for s in services},
            "host": host_cpu(),
            "children": resource.getrusage(resource.RUSAGE_CHILDREN),
            "self": resource.getrusage(resource.RUSAGE_SELF)}


def _rusage_s(ru):
    return ru.ru_utime + ru.ru_stime


def cpu_between(before, after):
    """CPU seconds spent between two snapshots: each service process's, our
    children's (oha), our own, and the host's busy and steal %."""
    busy = after["host"][0] - before["host"][0]
    steal = after["host"][1] - before["host"][1]
    total = after["host"][2] - before["host"][2]
    return {
        "procs_s": {k: (after["procs"][k] - v) / CLK_TCK for k, v in before["procs"].items()},
        "children_s": _rusage_s(after["children"]) - _rusage_s(before["children"]),
        "self_s": _rusage_s(after["self"]) - _rusage_s(before["self"]),
        "busy_pct": 100.0 * busy / total if total else None,
        "steal_pct": 100.0 * steal / total if total else None,
    }


# ----------------------------------------------------------------- sampler


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


def series_of(samples, label, key):
    """[(t, value)] of one reading of one process, skipping the missing ones."""
    return [(r["t"], r[label][key]) for r in samples
            if label in r and r[label].get(key) is not None]
