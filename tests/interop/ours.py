"""What the interop tests share: the ProcessName wire format by hand (no
generated code needed), and our services as processes."""

import json
import pathlib
import queue
import subprocess
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
METHOD = "/app.grpc.Service1/ProcessName"
START_TIMEOUT = 30


def encode(name: str) -> bytes:
    """A ProcessNameRequest: field 1, a string (proto3 leaves out an empty one)."""
    data = name.encode()
    if not data:
        return b""
    return b"\x0a" + varint(len(data)) + data


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def decode(data: bytes) -> str:
    """The name of a ProcessNameResponse (field 1), "" when left out."""
    if not data:
        return ""
    assert data[0] == 0x0A, data[:8]
    length, shift, i = 0, 0, 1
    while True:
        length |= (data[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not data[i - 1] & 0x80:
            break
    return data[i : i + length].decode()


class Service:
    """One of our services as a process on loopback, plaintext gRPC, its
    log lines collected; `listening` is its "listening" line."""

    def __init__(self, name: str, env: dict):
        base = {
            "TLS_MODE": "insecure",
            "BIND_ADDR": "127.0.0.1",
            "PORT": "0",
            "ADMIN_PORT": "0",
            "DRAIN_DELAY": "0s",
            "LOG_FORMAT": "json",
        }
        binary = ROOT / "target" / "debug" / name
        if not binary.exists():
            pytest.fail(f"{binary} is missing: run `cargo build --workspace --bins` first")
        self.process = subprocess.Popen(
            [str(binary)], env={**base, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.listening = self.wait_for(lambda l: l.get("message") == f"{name} listening")

    def _read(self):
        for line in self.process.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"message": line.strip()})
        self.lines.put(None)

    def wait_for(self, matches):
        """The first log line from now on that `matches`."""
        while True:
            line = self.lines.get(timeout=START_TIMEOUT)
            assert line is not None, "service1 exited"
            if matches(line):
                return line

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
