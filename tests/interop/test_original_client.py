"""Our service1, driven the way the original's service2 drives it: grpcio,
plaintext (TLS_MODE=insecure, as the original runs), the method path and
message of the original's proto, the request id in metadata.

The original's service2 validates nothing, so whatever reaches it reaches
ProcessName: these cases are what our service1 must answer as the original
service1 did.
"""

import json
import urllib.request

import grpc
import pytest

from ours import METHOD, decode, encode


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
    with urllib.request.urlopen(f"http://{service1.listening['rest']}/api/v1/name?name=test", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/json"
        assert json.load(reply) == {"name": "TEST"}
