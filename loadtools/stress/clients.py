"""The storm's hand-written client groups: well-behaved clients that honour
`503 + Retry-After`, slowloris connections and their variants, and clients
that send an oversized header."""

import asyncio
import time

from loadtools.stress.http1 import close_writer, err_name, read_response
from loadtools.stress.limits import CUTOFF_SLACK_S, HEADER_READ_TIMEOUT_S

OK_BODY = b'"Hello, GOOD!"'
READ_ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError)


def tally(counts, key, n=1):
    counts[key] = counts.get(key, 0) + n


def good_stats():
    """What the well-behaved clients add up, together."""
    return {"requests": 0, "ok": 0, "ok_first_attempt": 0, "attempts": 0, "shed_503": 0,
            "connects": 0, "outcomes": {}, "attempt_answers": {}, "latencies": [],
            "failures": [], "t0": time.monotonic()}


def answer_kind(status, headers):
    """How an answer counts: "200", "503 + Retry-After" (documented), or its status."""
    retry_after = headers.get("retry-after")
    if status == 200:
        return "200"
    if status == 503 and bool(retry_after) and retry_after.isdigit():
        return "503 + Retry-After"
    return str(status)


class GoodClient:
    """A well-behaved client: one keep-alive connection, paced requests, and a
    retry after `Retry-After` when (and only when) it gets the documented 503."""

    def __init__(self, i, s2, cfg, stats):
        self.i, self.s2, self.cfg, self.stats = i, s2, cfg, stats
        self.reader = self.writer = None
        self.on_conn = 0  # requests sent on the current connection
        self.fresh, self.local = True, None

    async def run(self, deadline):
        """Requests at good_rate / good_clients per second until `deadline`."""
        period = self.cfg["good_clients"] / self.cfg["good_rate"]
        next_at = time.monotonic() + period * self.i / self.cfg["good_clients"]
        n = 0
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
                outcome, attempts, first_status = await self.request(n, started)
                self.record(outcome, attempts, first_status, time.monotonic() - started)
        finally:
            await self.disconnect()

    async def disconnect(self):
        await close_writer(self.writer)
        self.reader = self.writer = None

    async def request(self, n, started):
        """Up to good_attempts attempts within good_deadline_s; returns
        (outcome, attempts made, status of the first answer)."""
        give_up = started + self.cfg["good_deadline_s"]
        outcome, attempts, first_status = None, 0, None
        while attempts < self.cfg["good_attempts"]:
            attempts += 1
            left = give_up - time.monotonic()
            if left <= 0:
                return "deadline passed", attempts, first_status
            try:
                status, headers, body = await self.attempt(n, attempts, left, give_up)
            except READ_ERRORS as e:
                return await self.failed(e, n, attempts), attempts, first_status
            kind = answer_kind(status, headers)
            tally(self.stats["attempt_answers"], kind)
            if headers.get("connection", "").lower() == "close":
                await self.disconnect()
            if first_status is None:
                first_status = status
            if status == 200:
                outcome = "200" if body == OK_BODY else "200 with a wrong body"
                return outcome, attempts, first_status
            if kind != "503 + Retry-After":
                outcome = f"{status}" + (" without Retry-After" if status == 503 else "")
                return outcome, attempts, first_status
            self.stats["shed_503"] += 1
            wait = min(float(headers["retry-after"]), 5.0)
            if time.monotonic() + wait >= give_up:
                return "503, no time left to retry", attempts, first_status
            outcome = "503, retries used up"
            await asyncio.sleep(wait)
        return outcome, attempts, first_status

    async def attempt(self, n, attempts, left, give_up):
        """One request on the kept-alive connection (made first if there is none)."""
        self.fresh = self.writer is None
        if self.writer is None:
            self.on_conn = 0
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.s2.addr, self.s2.port), left)
            self.stats["connects"] += 1
            self.local = self.writer.get_extra_info("sockname")
        self.on_conn += 1
        self.writer.write(
            (f"GET /api/v1/say-hello?name=good HTTP/1.1\r\nHost: {self.s2.addr}:{self.s2.port}\r\n"
             f"X-Request-ID: stress-good-{self.i}-{n}-{attempts}\r\n\r\n").encode())
        return await asyncio.wait_for(read_response(self.reader),
                                      max(0.01, give_up - time.monotonic()))

    async def failed(self, e, n, attempts):
        """An attempt with no answer: noted (the first 100, to follow into the
        logs), and the connection dropped. Returns the outcome."""
        outcome = err_name(e)
        tally(self.stats["attempt_answers"], outcome)
        if len(self.stats["failures"]) < 100:
            self.stats["failures"].append({
                "t_s": round(time.monotonic() - self.stats["t0"], 3), "error": outcome,
                "request_id": f"stress-good-{self.i}-{n}-{attempts}",
                "fresh_connection": self.fresh, "requests_on_connection": self.on_conn,
                "local": self.local})
        await self.disconnect()
        return outcome

    def record(self, outcome, attempts, first_status, latency):
        st = self.stats
        st["requests"] += 1
        st["attempts"] += attempts
        tally(st["outcomes"], outcome)
        if outcome == "200":
            st["ok"] += 1
            st["latencies"].append(latency)
            if first_status == 200:
                st["ok_first_attempt"] += 1


# --------------------------------------------------------------- slowloris


def slowloris_payload(kind):
    """Bytes a slowloris connection sends, one at a time (never a whole head)."""
    if kind == "partial-head":
        yield from b"GET /api/v1/say-hello?name=slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for k in range(1_000_000):
            yield from f"X-Slow-{k}: x\r\n".encode()
    elif kind == "h2-preface":
        yield from b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    # "silent": nothing


async def trickle(rec, reader, writer, interval, deadline, limit):
    """Send rec's kind of payload a byte per `interval` until the server
    closes the connection or the storm ends; note which, and when."""
    opened = time.monotonic()
    payload = slowloris_payload(rec["kind"])
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
        await trickle(rec, reader, writer, interval, deadline, limit)
        if kind != "partial-head":
            return  # the variants: one connection per slot is enough


# --------------------------------------------------------- oversized header


async def oversized_once(s2, head):
    """What one request with an oversized header got: its status, or what failed."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(s2.addr, s2.port), 5)
    except (OSError, asyncio.TimeoutError) as e:
        return f"connect failed ({err_name(e)})"
    try:
        writer.write(head)
        status, _, _ = await asyncio.wait_for(read_response(reader), 10)
        return str(status)
    except READ_ERRORS as e:
        return err_name(e)
    finally:
        await close_writer(writer)


async def oversized_client(i, s2, cfg, deadline, results):
    """Every 0.2 s, on a new connection, a request with an oversized header."""
    head = (b"GET /api/v1/say-hello?name=big HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
            + b"a" * cfg["oversized_bytes"] + b"\r\n\r\n")
    await asyncio.sleep(0.05 * i)
    for _ in range(100_000):
        if time.monotonic() >= deadline:
            return
        tally(results, await oversized_once(s2, head))
        await asyncio.sleep(0.2)
