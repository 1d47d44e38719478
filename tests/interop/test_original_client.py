"""Our service1, driven the way the original's service2 drives it: grpcio,
plaintext (TLS_MODE=insecure, as the original runs), the method path and
message of the original's proto, the request id in metadata.

The original's service2 validates nothing, so whatever reaches it reaches
ProcessName: these cases are what our service1 must answer as the original
service1 did.
"""

import json
import pathlib
import queue
import subprocess
import threading
import urllib.request

import grpc
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICE1 = ROOT / "target" / "debug" / "service1"
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


class Service1:
    """service1 as a process on loopback, its log lines collected."""

    def __init__(self):
        env = {
            "TLS_MODE": "insecure",
            "BIND_ADDR": "127.0.0.1",
            "PORT": "0",
            "GRPC_PORT": "0",
            "ADMIN_PORT": "0",
            "DRAIN_DELAY": "0s",
            "LOG_FORMAT": "json",
        }
        self.process = subprocess.Popen(
            [str(SERVICE1)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        listening = self.wait_for(lambda l: l.get("message") == "service1 listening")
        self.grpc, self.rest = listening["grpc"], listening["rest"]

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


@pytest.fixture(scope="module")
def service1():
    if not SERVICE1.exists():
        pytest.fail(f"{SERVICE1} is missing: run `cargo build --workspace --bins` first")
    service = Service1()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def channel(service1):
    channel = grpc.insecure_channel(service1.grpc)
    grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def process_name(channel):
    return channel.unary_unary(METHOD, request_serializer=encode, response_deserializer=decode)


@pytest.mark.parametrize(
    "name, answer",
    [
        ("test", "TEST"),
        ("straße", "STRASSE"),
        ("", ""),
        ("a" * 1025, "A" * 1025),
        ("ä" * 4000, "Ä" * 4000),
    ],
    ids=["plain", "unicode", "empty", "over-max-name-bytes", "8000-bytes"],
)
def test_process_name_answers_as_the_original_service1_did(process_name, name, answer):
    assert process_name(name, timeout=10) == answer


def test_a_request_without_a_name_gets_an_empty_name(channel):
    empty = channel.unary_unary(METHOD, request_serializer=lambda _: b"", response_deserializer=decode)
    assert empty(None, timeout=10) == ""


def test_a_message_over_the_size_limit_is_resource_exhausted(process_name):
    with pytest.raises(grpc.RpcError) as error:
        process_name("x" * 20_000, timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_request_id_in_metadata_reaches_service1s_log(service1, process_name):
    process_name("id", timeout=10, metadata=[("request_id", "interop-1234")])
    line = service1.wait_for(lambda l: l.get("request_id") == "interop-1234")
    assert line["message"] == "grpc call served"
    assert line["grpc_code"] == 0


def test_the_rest_api_of_service1_answers_as_the_readme_says(service1):
    with urllib.request.urlopen(f"http://{service1.rest}/api/v1/name?name=test", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/json"
        assert json.load(reply) == {"name": "TEST"}
