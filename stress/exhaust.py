"""The resource-exhaustion phase of `make stress` (issue 13): HTTP/2 shapes
that cost a client almost nothing and used to cost a pod its memory or its
probes. Speaks HTTP/2 by hand (standard library only): requests are encoded
with HPACK literals, and answers are judged by their frames (an accepted
Watch sends DATA, a refused call ends with HEADERS alone; `:status 200`
is the static-table byte 0x88), so no HPACK decoder is needed.

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
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
STATUS_200 = 0x88  # HPACK static table entry 8, `:status: 200`
EMPTY_GRPC_MESSAGE = b"\0\0\0\0\0"  # an empty HealthCheckRequest (service "")

WATCH = "/grpc.health.v1.Health/Watch"
CHECK = "/grpc.health.v1.Health/Check"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits=7, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = [first | limit], value - limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(out + [value])


def hpack_literal(name, value):
    """Literal header field without indexing, new name, no Huffman."""
    n, v = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(n)) + n + hpack_int(len(v)) + v


def request_block(method, authority, path, grpc=False):
    fields = [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)]
    if grpc:
        fields += [("content-type", "application/grpc"), ("te", "trailers")]
    return b"".join(hpack_literal(n, v) for n, v in fields)


class Stream:
    __slots__ = ("status_200", "data", "ended", "reset")

    def __init__(self):
        self.status_200, self.data, self.ended, self.reset = None, False, False, False


class H2:
    """One client HTTP/2 connection (prior knowledge, plaintext)."""

    def __init__(self, addr, port):
        self.addr, self.port = addr, port
        self.authority = f"{addr}:{port}"
        self.reader = self.writer = None
        self.next_id = 1
        self.streams = {}
        self.max_streams = None
        self.settings = asyncio.Event()
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()
        self.goaway = False
        self.task = None

    async def open(self, timeout=10.0):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.addr, self.port), timeout)
        self.writer.write(PREFACE + frame(SETTINGS, 0, 0))
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.settings.wait(), timeout)

    def request(self, method, path, grpc=False, message=None, end=True):
        """Opens a stream; with `end` false and no message, the request never ends."""
        sid, self.next_id = self.next_id, self.next_id + 2
        self.streams[sid] = Stream()
        block = request_block(method, self.authority, path, grpc)
        last = END_STREAM if end and message is None else 0
        out = frame(HEADERS, END_HEADERS | last, sid, block)
        if message is not None:
            out += frame(DATA, END_STREAM if end else 0, sid, message)
        self.writer.write(out)
        return sid

    def ping(self):
        self.writer.write(frame(PING, 0, 0, b"stress!!"))

    def open_streams(self):
        return sum(1 for s in self.streams.values() if not s.ended)

    async def _read(self):
        try:
            for _ in range(10_000_000):
                head = await self.reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags = head[3], head[4]
                sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = await self.reader.readexactly(length) if length else b""
                stream = self.streams.get(sid)
                if kind == SETTINGS and not flags & ACK:
                    for k in range(0, len(payload) - 5, 6):
                        ident, value = struct.unpack(">HI", payload[k:k + 6])
                        if ident == SETTINGS_MAX_CONCURRENT_STREAMS:
                            self.max_streams = value
                    self.writer.write(frame(SETTINGS, ACK, 0))
                    self.settings.set()
                elif kind == PING and not flags & ACK:
                    self.writer.write(frame(PING, ACK, 0, payload))
                elif kind == GOAWAY:
                    self.goaway = True
                elif kind == HEADERS and stream is not None:
                    if stream.status_200 is None:
                        # Padding and priority flags are never set by our servers.
                        stream.status_200 = bool(payload) and payload[0] == STATUS_200
                    if flags & END_STREAM:
                        stream.ended = True
                elif kind == DATA:
                    if length:
                        self.writer.write(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", length)))
                    if stream is not None:
                        stream.data = stream.data or length > 0
                        if flags & END_STREAM:
                            stream.ended = True
                elif kind == RST_STREAM and stream is not None:
                    stream.ended = stream.reset = True
                self.changed.set()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            self.changed.set()

    async def wait_change(self, timeout):
        self.changed.clear()
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def close(self):
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (OSError, asyncio.TimeoutError):
                pass


# ------------------------------------------------------------------ groups


async def idle_h2(i, s2, deadline, results):
    """One request, then PINGs every 5 s until the server closes the connection."""
    await asyncio.sleep(0.002 * i)
    rec = {"served": False, "closed_after_s": None, "goaway": False, "error": None}
    results.append(rec)
    conn = H2(s2.addr, s2.port)
    try:
        await conn.open()
        sid = conn.request("GET", "/api/v1/say-hello?name=idle")
        for _ in range(1000):
            if conn.streams[sid].ended or conn.closed.is_set():
                break
            await conn.wait_change(1.0)
        rec["served"] = bool(conn.streams[sid].status_200)
        served_at = time.monotonic()
        for _ in range(100_000):
            if conn.closed.is_set() or time.monotonic() >= deadline:
                break
            conn.ping()
            try:
                await asyncio.wait_for(conn.closed.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
        if conn.closed.is_set():
            rec["closed_after_s"] = round(time.monotonic() - served_at, 2)
        rec["goaway"] = conn.goaway
    except (OSError, asyncio.TimeoutError) as e:
        rec["error"] = type(e).__name__
    finally:
        await conn.close()


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


async def held_checks(service, conns_wanted, deadline, results):
    """Check calls whose message never comes, on every stream the admin port
    allows per connection, each reopened when the server ends it."""
    conns = []
    try:
        for _ in range(conns_wanted):
            conn = H2(service.addr, service.admin_port)
            try:
                await conn.open()
            except (OSError, asyncio.TimeoutError):
                results["connect_failed"] = results.get("connect_failed", 0) + 1
                continue
            conns.append(conn)
        for _ in range(1_000_000):
            if time.monotonic() >= deadline:
                break
            held = 0
            for conn in conns:
                if conn.closed.is_set():
                    continue
                for _ in range((conn.max_streams or 16) - conn.open_streams()):
                    conn.request("POST", CHECK, grpc=True, end=False)
                    results["opened"] = results.get("opened", 0) + 1
                held += conn.open_streams()
            results["peak_held"] = max(results.get("peak_held", 0), held)
            await asyncio.sleep(0.5)
        for conn in conns:
            for s in conn.streams.values():
                key = "ended (504 or reset)" if s.ended else "still held at the end"
                results[key] = results.get(key, 0) + 1
    finally:
        results["connections"] = len(conns)
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


async def http1_get(addr, port, path, timeout):
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), timeout)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {addr}:{port}\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.split()[1].decode() if line else "closed"
    except (OSError, asyncio.TimeoutError, IndexError) as e:
        return type(e).__name__
    finally:
        if writer is not None:
            writer.close()


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


async def probes(services, s2, deadline, results):
    """What the kubelet does, every second: new connection, 1 s timeout."""
    for _ in range(100_000):
        if time.monotonic() >= deadline:
            return
        tick = time.monotonic()
        jobs = []
        for s in services:
            jobs += [(s.label, "/livez", http1_get(s.addr, s.admin_port, "/livez", 1.0)),
                     (s.label, "/readyz", http1_get(s.addr, s.admin_port, "/readyz", 1.0)),
                     (s.label, "grpc Check", grpc_check(s, 1.0))]
        jobs.append(("service2", "say-hello", http1_get(s2.addr, s2.port, "/api/v1/say-hello?name=probe", 5.0)))
        answers = await asyncio.gather(*(j[2] for j in jobs))
        for (label, what, _), answer in zip(jobs, answers):
            key = f"{label} {what}"
            ok = answer in ("200", "SERVING")
            row = results.setdefault(key, {"ok": 0, "failed": 0, "answers": {}})
            row["ok" if ok else "failed"] += 1
            row["answers"][answer] = row["answers"].get(answer, 0) + 1
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


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


async def run(services, cfg, sampler_cls, log):
    s2 = services[-1]
    seconds = cfg["exhaust_s"]
    sampler = sampler_cls(services, 1.0)
    sampler.sample()
    t0 = time.monotonic()
    deadline = t0 + seconds
    log(f"exhaustion: {seconds:g} s: {cfg['idle_h2']} idle h2 connections, {cfg['watches']} Watch "
        f"streams and {cfg['held_conns']} connections of held Check calls per admin port, "
        f"probes every second")
    idle, held, probe = [], {s.label: {} for s in services}, {}
    watch_res = {s.label: {} for s in services}
    watch_conns = {s.label: [] for s in services}
    stop_watching = asyncio.Event()
    tasks = [asyncio.create_task(sampler.run(seconds + 1))]
    tasks += [asyncio.create_task(idle_h2(i, s2, deadline, idle)) for i in range(cfg["idle_h2"])]
    tasks += [asyncio.create_task(held_checks(s, cfg["held_conns"], deadline, held[s.label]))
              for s in services]
    tasks += [asyncio.create_task(probes(services, s2, deadline, probe))]
    watchers = [asyncio.create_task(watches(s, cfg["watches"], stop_watching, watch_res[s.label],
                                            watch_conns[s.label])) for s in services]
    try:
        done, pending = await asyncio.wait(tasks, timeout=seconds + 60)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            if t.exception() is not None:
                raise t.exception()
        stop_watching.set()
        await asyncio.gather(*watchers, return_exceptions=True)
        for label, conns in watch_conns.items():
            watch_res[label].update(watch_counts(conns))
            watch_res[label]["connections"] = len(conns)
        sampler.sample()
        # Shut down with the Watch streams still open.
        log("exhaustion: SIGTERM with the Watch streams open")
        shutdown = await terminate_and_time(services, cfg["shutdown_limit_s"] + 10)
    finally:
        for t in tasks + watchers:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, *watchers, return_exceptions=True)
        await asyncio.gather(*(c.close() for conns in watch_conns.values() for c in conns),
                             return_exceptions=True)
    return {"seconds": seconds, "wall_s": round(time.monotonic() - t0, 1), "idle_h2": idle,
            "watches": watch_res, "held": held, "probes": probe, "shutdown": shutdown,
            "samples": sampler.samples}
