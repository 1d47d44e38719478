"""The hostile-client phase of `make stress` (issue 26): the shapes a second
outside attack found, all at once and under full load, on fresh processes.

Groups, for STRESS_HOSTILE_SECONDS:
- zero window: HTTP/2 connections whose client announces a window of 0 and
  asks for responses on every stream it may open (`/metrics` on service1's
  admin port, say-hello on service2's REST port); the server must release
  each stream (reset it) within HTTP_WRITE_TIMEOUT;
- never read: HTTP/1.1 connections to service1[0]'s REST port that pipeline
  /api/v1/name requests with a 1,000-byte name and never read an answer
  (answered locally, a KiB each, so the server's writes stall within
  seconds); the server must close each within HTTP_WRITE_TIMEOUT of that;
- over the cap: MAX_CONNECTIONS + STRESS_HOSTILE_OVER_CAP silent TCP
  connections to service1[1]'s REST port, reopened as they end; past the
  cap each is closed at once, and no more than the cap are ever held;
- half handshakes: MAX_TLS_HANDSHAKES + STRESS_HOSTILE_OVER_CAP connections
  to service1[0]'s gRPC port that start a ClientHello and never finish it;
- no preface: finished mTLS connections (service2's certificate) to
  service1[1]'s gRPC port that never send HTTP/2's preface; each closed
  within TLS_HANDSHAKE_TIMEOUT of its handshake;
- full load: oha on say-hello, closed loop, STRESS_HOSTILE_LOAD_CONNECTIONS;
- probes every second on every admin port, and a say-hello (exhaust.py),
  from a process of their own: this one, a single thread with thousands of
  sockets, can fall behind a probe's 1 s timeout on a loaded machine.
A connection group stops opening new rounds once a whole timeout and its
slack no longer fit before the end, so that every round it opened is judged.
"""

import asyncio
import multiprocessing
import socket
import ssl
import struct
import time
from types import SimpleNamespace

from loadtools.common import logger, wait_all
from loadtools.loadgen import oha_cmd, run_oha_async, summarize_oha
from loadtools.procfs import Sampler
from loadtools.stress.exhaust import probes
from loadtools.stress.h2 import H2, PREFACE, SETTINGS, frame
from loadtools.stress.http1 import close_writer
from loadtools.stress.limits import (HEADER_READ_TIMEOUT_S, HOSTILE_SLACK_S, MAX_CONNECTIONS,
                                     MAX_TLS_HANDSHAKES, TLS_HANDSHAKE_TIMEOUT_S, WRITE_TIMEOUT_S)

log = logger("stress")

SETTINGS_INITIAL_WINDOW_SIZE = 0x4
# A TLS record header announcing a 512-byte handshake message, and the first
# bytes of a ClientHello: the server must wait for the rest.
HALF_CLIENT_HELLO = b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc\x03\x03" + bytes(8)
# "Closed at once": a connection refused at the cap is reset as soon as it
# is accepted, well before any timeout could have ended it.
AT_ONCE_S = 1.0


class ZeroWindowH2(H2):
    """An HTTP/2 client whose streams start with a window of 0 and never get more."""

    async def open(self, timeout=10.0):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.addr, self.port), timeout)
        zero_window = struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, 0)
        self.writer.write(PREFACE + frame(SETTINGS, 0, 0, zero_window))
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.settings.wait(), timeout)


def rounds(deadline, needed_s):
    """True while a whole round (its timeout and slack) still fits before `deadline`."""
    return time.monotonic() + needed_s < deadline


async def zero_window(addr, port, path, streams, deadline, results):
    """Rounds of: a connection, `streams` GETs, until the server has ended every
    stream (or the connection); records how long that took."""
    for _ in range(10_000):
        if not rounds(deadline, WRITE_TIMEOUT_S + HOSTILE_SLACK_S):
            return
        rec = {"streams": 0, "reset": 0, "released_after_s": None, "error": None}
        results.append(rec)
        conn = ZeroWindowH2(addr, port)
        try:
            await conn.open()
            t0 = time.monotonic()
            sids = [conn.request("GET", path) for _ in range(min(streams, conn.max_streams or streams))]
            rec["streams"] = len(sids)
            end = t0 + WRITE_TIMEOUT_S + HOSTILE_SLACK_S + 5
            for _ in range(100_000):
                if conn.closed.is_set() or all(conn.streams[s].ended for s in sids):
                    rec["released_after_s"] = round(time.monotonic() - t0, 2)
                    break
                if time.monotonic() >= end:
                    break
                await conn.wait_change(1.0)
            rec["reset"] = sum(conn.streams[s].reset for s in sids)
        except (OSError, asyncio.TimeoutError) as e:
            rec["error"] = type(e).__name__
        finally:
            await conn.close()


async def small_window_connection(addr, port):
    """A TCP connection whose client stops reading once 1 KiB waits in its
    buffer, with a receive window of a few KiB: the server's writes find the
    socket full after a few hundred responses, not after the megabytes
    loopback's autotuned buffers would take."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (addr, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=1024)


async def never_read(addr, port, deadline, results):
    """Rounds of: a connection that pipelines /api/v1/name requests and never
    reads; records when the server closed it, counted from the last write
    the connection took (when the server had stopped reading)."""
    path = "/api/v1/name?name=" + "n" * 1000
    request = f"GET {path} HTTP/1.1\r\nHost: {addr}:{port}\r\n\r\n".encode()
    limit_s = WRITE_TIMEOUT_S + HOSTILE_SLACK_S + 5
    for _ in range(10_000):
        if not rounds(deadline, WRITE_TIMEOUT_S + HOSTILE_SLACK_S):
            return
        rec = {"closed_after_stall_s": None, "sent_kib": 0, "error": None}
        results.append(rec)
        writer, last_taken = None, time.monotonic()
        try:
            _, writer = await asyncio.wait_for(small_window_connection(addr, port), 5)
            last_taken = time.monotonic()
            for _ in range(1_000_000):
                writer.write(request * 16)
                rec["sent_kib"] += len(request) * 16 // 1024
                await asyncio.wait_for(writer.drain(), last_taken + limit_s - time.monotonic())
                last_taken = time.monotonic()
        except (ConnectionError, asyncio.IncompleteReadError):
            rec["closed_after_stall_s"] = round(time.monotonic() - last_taken, 2)
        except (OSError, asyncio.TimeoutError) as e:
            rec["error"] = type(e).__name__
        finally:
            await close_writer(writer)


async def held_until_closed(connect, limit_s, rec):
    """Opens with `connect` (returns a reader), then reads until the server
    closes the connection; records when (None: still open after `limit_s`)."""
    t0 = time.monotonic()
    writer = None
    try:
        reader, writer = await connect()
        for _ in range(10_000):
            data = await asyncio.wait_for(reader.read(4096), max(0.01, t0 + limit_s - time.monotonic()))
            if not data:
                break
        rec["closed_after_s"] = round(time.monotonic() - t0, 2)
    except ConnectionRefusedError as e:  # nothing listening: not the server's answer
        rec["error"] = type(e).__name__
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        rec["closed_after_s"] = round(time.monotonic() - t0, 2)
    except (OSError, asyncio.TimeoutError) as e:
        rec["error"] = type(e).__name__
    finally:
        await close_writer(writer)


async def reopened(connect, timeout_s, deadline, results, start_delay):
    """`held_until_closed` rounds on one slot, while a whole one fits."""
    await asyncio.sleep(start_delay)
    for _ in range(10_000):
        if not rounds(deadline, timeout_s + HOSTILE_SLACK_S):
            return
        rec = {"closed_after_s": None, "error": None}
        results.append(rec)
        await held_until_closed(connect, timeout_s + HOSTILE_SLACK_S + 5, rec)
        closed = rec["closed_after_s"]
        if rec["error"] or (closed is not None and closed < AT_ONCE_S):
            # Refused: try again, as a flood would, but slowly enough that
            # this process (one thread, thousands of sockets) keeps up.
            await asyncio.sleep(2.0)


def silent_tcp(addr, port):
    async def connect():
        return await asyncio.wait_for(asyncio.open_connection(addr, port), 5)
    return connect


def half_handshake(addr, port):
    async def connect():
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), 5)
        writer.write(HALF_CLIENT_HELLO)
        return reader, writer
    return connect


def mtls_context(certs):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    ctx.load_cert_chain(str(certs / "service2.crt"), str(certs / "service2.key"))
    ctx.set_alpn_protocols(["h2"])
    return ctx


def no_preface(addr, port, ctx):
    async def connect():
        return await asyncio.wait_for(
            asyncio.open_connection(addr, port, ssl=ctx, server_hostname="service1"), 5)
    return connect


async def full_load(url, oha, cfg):
    cmd = oha_cmd(oha, url, cfg["hostile_s"], cfg["hostile_load_conns"], timeouts=True)
    res = summarize_oha(await run_oha_async(cmd, cfg["hostile_s"] + 90))
    res["oha_command"] = ["oha"] + cmd[1:]
    return res


def groups(services, certs, cfg, deadline, doc):
    """Every group's task; what each records goes into `doc`."""
    s1a, s1b, s2 = services[0], services[1], services[-1]
    over = cfg["hostile_over_cap"]
    spawn = asyncio.create_task
    doc.update(zero_window_admin=[], zero_window_rest=[], never_read=[], over_cap=[],
               half_handshakes=[], no_preface=[])
    tasks = [spawn(zero_window(s1a.addr, s1a.admin_port, "/metrics", 16, deadline,
                               doc["zero_window_admin"]))
             for _ in range(cfg["hostile_zero_window_conns"])]
    tasks += [spawn(zero_window(s2.addr, s2.port, "/api/v1/say-hello?name=zero-window", 16,
                                deadline, doc["zero_window_rest"]))
              for _ in range(cfg["hostile_zero_window_conns"])]
    tasks += [spawn(never_read(s1a.addr, s1a.port, deadline, doc["never_read"]))
              for _ in range(cfg["hostile_never_read_conns"])]
    tasks += [spawn(reopened(silent_tcp(s1b.addr, s1b.port), HEADER_READ_TIMEOUT_S, deadline,
                             doc["over_cap"], 0.001 * i))
              for i in range(MAX_CONNECTIONS + over)]
    tasks += [spawn(reopened(half_handshake(s1a.addr, s1a.grpc_port), TLS_HANDSHAKE_TIMEOUT_S,
                             deadline, doc["half_handshakes"], 0.005 * i))
              for i in range(MAX_TLS_HANDSHAKES + over)]
    ctx = mtls_context(certs)
    tasks += [spawn(reopened(no_preface(s1b.addr, s1b.grpc_port, ctx), TLS_HANDSHAKE_TIMEOUT_S,
                             deadline, doc["no_preface"], 0.01 * i))
              for i in range(cfg["hostile_no_preface_conns"])]
    return tasks


def run_probes(targets, s2, seconds, queue):
    """The probes, in a process of their own (see the module's doc)."""
    results = {}
    asyncio.run(probes(targets, s2, time.monotonic() + seconds, results))
    queue.put(results)


def start_probes(services, seconds):
    """A process probing `services` for `seconds`; (process, queue of its results)."""
    def address(s):
        return SimpleNamespace(label=s.label, addr=s.addr, port=s.port, admin_port=s.admin_port)
    targets = [address(s) for s in services]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=run_probes, args=(targets, targets[-1], seconds, queue), daemon=True)
    process.start()
    return process, queue


def probe_results(process, queue, timeout):
    try:
        return queue.get(timeout=timeout)
    except Exception:  # queue.Empty, or the process died: no probe answered
        return {"probes": {"ok": 0, "failed": 1, "answers": {"no results": 1}}}
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()


async def run(services, url, certs, oha, cfg):
    """The phase; every process must still be the one it started as."""
    seconds = cfg["hostile_s"]
    sampler = Sampler(services, 1.0)
    sampler.sample()
    t0 = time.monotonic()
    deadline = t0 + seconds
    log(f"hostile: {seconds:g} s: zero-window streams, never-read HTTP/1, "
        f"{MAX_CONNECTIONS + cfg['hostile_over_cap']:,} silent connections, "
        f"{MAX_TLS_HANDSHAKES + cfg['hostile_over_cap']:,} half handshakes, "
        f"{cfg['hostile_no_preface_conns']} mTLS without a preface, oha on say-hello over "
        f"{cfg['hostile_load_conns']} connections, probes every second")
    doc = {"seconds": seconds}
    sampling = asyncio.create_task(sampler.run(seconds + 60))
    prober = start_probes(services, seconds)
    tasks = groups(services, certs, cfg, deadline, doc)
    try:
        doc["load"] = await full_load(url, oha, cfg)
        await wait_all(tasks, max(1.0, deadline - time.monotonic()) + 60)
    finally:
        for t in tasks + [sampling]:
            t.cancel()
        await asyncio.gather(*tasks, sampling, return_exceptions=True)
    doc["probes"] = probe_results(*prober, timeout=60)
    sampler.sample()
    doc["alive"] = {s.label: s.alive() for s in services}
    # What each capped process may hold beyond its fds at the start: the cap,
    # and the other groups' connections to it (checks.hostile_cap_checks).
    doc["fd_bounds"] = {
        services[1].label: {"cap": MAX_CONNECTIONS, "others": cfg["hostile_no_preface_conns"]},
        services[0].label: {"cap": MAX_TLS_HANDSHAKES,
                            "others": cfg["hostile_zero_window_conns"] + cfg["hostile_never_read_conns"]},
    }
    doc["wall_s"] = round(time.monotonic() - t0, 1)
    doc["samples"] = sampler.samples
    return doc
