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
    """The name of a ProcessNameResponse (field 1), "" when left out. Other
    fields are skipped, as protobuf's generated code skips fields it does not
    know: our service1 adds field 2 (an ObjectId)."""
    name, i = "", 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire_type = key >> 3, key & 7
        assert wire_type == 2, f"field {number}: wire type {wire_type}"
        length, i = read_varint(data, i)
        if number == 1:
            name = data[i : i + length].decode()
        i += length
    return name


def read_varint(data: bytes, i: int):
    value, shift = 0, 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            return value, i


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
