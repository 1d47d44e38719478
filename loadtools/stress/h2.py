"""HTTP/2 by hand (standard library only), for the exhaustion phase.

Requests are encoded with HPACK literals, and answers are judged by their
frames (an accepted Watch sends DATA, a refused call ends with HEADERS
alone; `:status 200` is the static-table byte 0x88), so no HPACK decoder
is needed.
"""

import asyncio
import struct

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
                self._on_frame(kind, flags, self.streams.get(sid), payload)
                self.changed.set()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            self.changed.set()

    def _on_frame(self, kind, flags, stream, payload):
        if kind == SETTINGS and not flags & ACK:
            self._on_settings(payload)
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
            if payload:
                self.writer.write(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload))))
            if stream is not None:
                stream.data = stream.data or len(payload) > 0
                if flags & END_STREAM:
                    stream.ended = True
        elif kind == RST_STREAM and stream is not None:
            stream.ended = stream.reset = True

    def _on_settings(self, payload):
        for k in range(0, len(payload) - 5, 6):
            ident, value = struct.unpack(">HI", payload[k:k + 6])
            if ident == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.max_streams = value
        self.writer.write(frame(SETTINGS, ACK, 0))
        self.settings.set()

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
