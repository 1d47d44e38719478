"""Instructions per request (BENCH_INSTRUCTIONS=1), a figure that does not
move with the neighbours: every service process runs under valgrind's
callgrind, which counts the instructions it executes in user space (the
kernel's share is not in it). After a warm-up, the counters are zeroed
(`callgrind_control -z`), a fixed number of requests is sent one at a time,
and the counters are dumped (`callgrind_control -d`); each process's count ÷
the requests is its instructions per request. callgrind is used because
`perf stat -e instructions` needs hardware counters, which VMs often lack."""

import shutil
import subprocess
import time

from loadtools.common import SetupError, fmt, logger, run_bounded
from loadtools.loadgen import oha_count_cmd, run_oha, summarize_oha
from loadtools.services import Launch, count_and_gzip, start_topology, stop_all

log = logger("bench")

CONCURRENCY = 1  # one request at a time: no batching that depends on timing
READY_TIMEOUT_S = 120.0  # a process starts 20-50x slower under callgrind
TOOLS = ("valgrind", "callgrind_control")


def check_tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise SetupError(f"BENCH_INSTRUCTIONS=1 needs {' and '.join(missing)} "
                         "(Debian: apt-get install valgrind)")


def plan(cfg):
    """name, then say-hello (1 replica), ours and then the baseline's."""
    pairs = ["ours"] + (["baseline"] if cfg["baseline"] else [])
    return [{"target": t, "pair": p,
             "id": f"{'baseline-' if p == 'baseline' else ''}{t}-1x-callgrind"}
            for t in ("name", "say-hello") for p in pairs]


def stem_of(logdir, label):
    return logdir / label.replace("[", "-").replace("]", "")


def wrap_for(logdir):
    """Each process under callgrind, its counts and valgrind's messages beside its log."""
    def wrap(label):
        stem = stem_of(logdir, label)
        return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={stem}.callgrind",
                f"--log-file={stem}.valgrind.log"]
    return wrap


def control(option, services):
    """callgrind_control -z (zero) or -d (dump) on every process; it waits for each."""
    for s in services:
        code, _, err = run_bounded(["callgrind_control", option, str(s.pid)], 120,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
        if code != 0:
            raise SetupError(f"callgrind_control {option} {s.label} failed: {err[:300]}")


def dumped_instructions(stem):
    """The instruction count (Ir) of the newest dump, `<stem>.callgrind.<n>`."""
    dumps = sorted(stem.parent.glob(f"{stem.name}.callgrind.*"),
                   key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else -1)
    if not dumps:
        raise SetupError(f"no callgrind dump for {stem.name}")
    for line in dumps[-1].read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SetupError(f"{dumps[-1]}: no summary line")


def count_window(services, oha, url, cfg):
    """Warm-up, zero, N requests one at a time, dump; oha's summary of the N."""
    n = cfg["instructions_requests"]
    timeout = 60 + n * 0.1  # at most 100 ms a request under callgrind
    run_oha(oha_count_cmd(oha, url, max(n // 10, 10), CONCURRENCY), timeout)
    control("-z", services)
    res = summarize_oha(run_oha(oha_count_cmd(oha, url, n, CONCURRENCY), timeout))
    control("-d", services)
    return res


def per_request(services, logdir, completed):
    """Instructions per request of each service (service1, service2), and both."""
    out = {"service1": None, "service2": None}
    for s in services:
        out[s.kind] = dumped_instructions(stem_of(logdir, s.label)) / completed
    out["total"] = (out["service1"] or 0) + (out["service2"] or 0)
    return out


def measure_one(item, oha, certs, logroot, cfg):
    logdir = logroot / item["id"]
    logdir.mkdir(parents=True)
    log(f"{item['id']}: {item['pair']} under callgrind, "
        f"{cfg['instructions_requests']} requests at c{CONCURRENCY}")
    how = Launch(item["pair"], cfg["worker_threads"], wrap_for(logdir))
    slow = dict(cfg, ready_timeout_s=max(cfg["ready_timeout_s"], READY_TIMEOUT_S))
    t0 = time.monotonic()
    services, url = start_topology(item["target"], 1, certs, logdir, slow, how)
    try:
        res = count_window(services, oha, url, cfg)
        ipr = per_request(services, logdir, res["completed"]) if res["completed"] else None
    finally:
        stop_all(services)
    for s in services:
        count_and_gzip(s.logfile)
    out = dict(item, requests=res["completed"], errors=res["errors"], per_request=ipr,
               seconds=round(time.monotonic() - t0, 1))
    log(f"{item['id']}: {fmt((ipr or {}).get('total'), 0)} instructions/request "
        f"({out['seconds']:g} s)")
    return out


def measure_all(oha, certs, logroot, cfg):
    check_tools()
    items = [measure_one(item, oha, certs, logroot, cfg) for item in plan(cfg)]
    base = {i["target"]: i for i in items if i["pair"] == "baseline"}
    for i in items:
        twin = base.get(i["target"])
        if i["pair"] == "ours" and twin and i["per_request"] and twin["per_request"]:
            i["vs_baseline"] = i["per_request"]["total"] / twin["per_request"]["total"]
    return items


def instructions_table(items):
    """results.md's section; nothing when BENCH_INSTRUCTIONS is off."""
    if not items:
        return []
    out = ["", "## Instructions per request (callgrind)", "",
           f"User-space instructions each service process executed for "
           f"{items[0]['requests']:,} requests sent one at a time after a warm-up, ÷ the "
           "requests (valgrind's callgrind; the kernel's share is not counted).", "",
           "| run | pair | instructions/req s1 | s2 | s1+s2 | ours ÷ baseline | errors |",
           "|---|---|---|---|---|---|---|"]
    for i in items:
        p = i["per_request"] or {}
        out.append(f"| {i['id']} | {i['pair']} | {fmt(p.get('service1'), 0)} "
                   f"| {fmt(p.get('service2'), 0)} | {fmt(p.get('total'), 0)} "
                   f"| {fmt(i.get('vs_baseline'))} | {i['errors']} |")
    return out
