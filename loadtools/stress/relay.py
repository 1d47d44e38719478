"""A TCP relay in front of one service1 replica that can make it answer
slowly: once switched on, every chunk from the replica to service2 is held
for a fixed delay before it is passed on. What service2 sends is passed on
at once, and the bytes are never looked at (TLS passes through untouched),
so the replica is exactly as shipped, only further away for its answers.

The relay runs its own asyncio loop in a thread, so the harness can start
service2 (which connects through it) with its ordinary, blocking helpers.
Bounded: every wait has a timeout, `stop()` closes every connection.
"""

import asyncio
import threading
import time

from loadtools.common import SetupError

CHUNK = 65536
CONNECT_TIMEOUT_S = 5.0


class Relay:
    """Listens on (host, port), forwards to `upstream`; `slow_down(s)` holds
    each later chunk from the upstream for `s` seconds."""

    def __init__(self, host, port, upstream):
        self.host, self.port, self.upstream = host, port, upstream
        self.delay_s = 0.0
        self.stats = {"connections": 0, "upstream_connect_failures": 0, "chunks_up": 0,
                      "chunks_down": 0, "chunks_down_delayed": 0, "bytes_down": 0,
                      "bytes_up": 0}
        self._loop = None
        self._stop = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None
        self._tasks = set()

    # ------------------------------------------------------------ control

    def start(self, timeout=5.0):
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise SetupError(f"relay on {self.host}:{self.port} did not start within {timeout:g}s")
        if self._error:
            raise SetupError(f"relay on {self.host}:{self.port}: {self._error}")

    def slow_down(self, delay_s):
        """From now on, hold each chunk from the upstream for `delay_s` seconds."""
        self.delay_s = delay_s

    def stop(self, timeout=10.0):
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------- the loop

    def _run(self):
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except Exception as e:  # noqa: BLE001 - reported by start()
            self._error = f"{type(e).__name__}: {e}"
        finally:
            self._ready.set()
            self._loop.close()

    async def _main(self):
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accepted, self.host, self.port)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.wait_for(server.wait_closed(), 5.0)

    async def _accepted(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        self.stats["connections"] += 1
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.upstream), CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                self.stats["upstream_connect_failures"] += 1
                return
            try:
                pumps = [asyncio.create_task(self._pump_up(reader, up_writer)),
                         asyncio.create_task(self._pump_down(up_reader, writer))]
                try:
                    # Either side ending ends the connection (h2 over TLS has no
                    # use for a half-closed one).
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for p in pumps:
                        p.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pump_up(self, src, dst):
        """service2 -> replica: at once."""
        while True:
            data = await src.read(CHUNK)
            if not data:
                return
            self.stats["chunks_up"] += 1
            self.stats["bytes_up"] += len(data)
            dst.write(data)
            await dst.drain()

    async def _pump_down(self, src, dst):
        """replica -> service2: each chunk due `delay_s` after it arrived, in order."""
        queue = asyncio.Queue()

        async def read():
            try:
                while True:
                    data = await src.read(CHUNK)
                    if not data:
                        return
                    delay = self.delay_s
                    queue.put_nowait((time.monotonic() + delay, delay > 0, data))
            finally:
                queue.put_nowait((time.monotonic(), False, b""))  # the end, after the rest

        reader = asyncio.create_task(read())
        try:
            while True:
                due, delayed, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    return
                self.stats["chunks_down"] += 1
                self.stats["chunks_down_delayed"] += delayed
                self.stats["bytes_down"] += len(data)
                dst.write(data)
                await dst.drain()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
