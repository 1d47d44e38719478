"""The ObjectId our service1 adds to each answer (ProcessNameResponse.id,
field 2, a bson.ObjectId message), seen from the Python side:

- the original's clients, whose generated code knows only field 1, still
  read the answer (proto3 keeps the unknown field and moves on);
- pymongo's bson.ObjectId takes the same 12 bytes and writes the same 24
  hex digits as the Rust bson crate, on the wire and in service2's log.
"""

import time
import urllib.request

import bson
import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.unknown_fields import UnknownFieldSet

from ours import METHOD, Service, encode


def original_messages():
    """ProcessNameRequest and ProcessNameResponse as the original's
    service1.proto declares them (one field each), built the way protoc's
    generated service1_pb2 builds them: from a file descriptor."""
    proto = descriptor_pb2.FileDescriptorProto(name="app/grpc/service1.proto", package="app.grpc", syntax="proto3")
    for name in ("ProcessNameRequest", "ProcessNameResponse"):
        message = proto.message_type.add(name=name)
        message.field.add(name="name", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    classes = message_factory.GetMessages([proto], pool=pool)
    return classes["app.grpc.ProcessNameRequest"], classes["app.grpc.ProcessNameResponse"]


Request, Response = original_messages()


def object_id_bytes(response):
    """The 12 bytes of field 2 (bson.ObjectId, its field 1), read from the
    fields the original's message does not know."""
    (field,) = [f for f in UnknownFieldSet(response) if f.field_number == 2]
    nested = field.data
    # The nested message: tag 0x0a (field 1, length-delimited), length 12.
    assert nested[:2] == b"\x0a\x0c", nested
    return nested[2:]


def test_the_original_client_reads_our_answer_and_skips_the_new_field(channel):
    process_name = channel.unary_unary(
        METHOD, request_serializer=Request.SerializeToString, response_deserializer=Response.FromString
    )

    response = process_name(Request(name="test"), timeout=10)

    assert response.name == "TEST"
    # The field is there, and the original's code kept it aside unread.
    assert [f.field_number for f in UnknownFieldSet(response)] == [2]


def test_pymongo_takes_the_same_12_bytes_and_writes_the_same_24_hex_digits(channel):
    process_name = channel.unary_unary(METHOD, request_serializer=encode, response_deserializer=Response.FromString)
    before = int(time.time())

    raw = object_id_bytes(process_name("mongo", timeout=10))

    after = int(time.time())
    oid = bson.ObjectId(raw)
    assert len(raw) == 12
    assert oid.binary == raw
    assert str(oid) == raw.hex() and len(str(oid)) == 24
    assert bson.ObjectId(raw.hex()).binary == raw
    # Its first four bytes are the time it was made, as pymongo reads them.
    assert before <= int(oid.generation_time.timestamp()) <= after


def test_each_answer_gets_a_new_time_ordered_object_id(channel):
    process_name = channel.unary_unary(METHOD, request_serializer=encode, response_deserializer=Response.FromString)

    ids = [bson.ObjectId(object_id_bytes(process_name("n", timeout=10))) for _ in range(3)]

    assert len(set(ids)) == 3
    assert ids == sorted(ids)


def test_pymongo_reads_the_object_id_service2_logs_and_the_body_is_unchanged(service1):
    env = {"SERVICE1_CHANNEL": service1.listening["grpc"], "RUST_LOG": "info,service2=debug"}
    service2 = Service("service2", env)
    try:
        request = urllib.request.Request(
            f"http://{service2.listening['rest']}/api/v1/say-hello?name=test", headers={"X-Request-ID": "oid-1"}
        )
        before = int(time.time())
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read()
        line = service2.wait_for(lambda l: l.get("request_id") == "oid-1" and "object_id" in l)
    finally:
        service2.stop()

    assert body == b'"Hello, TEST!"'
    logged = line["object_id"]
    oid = bson.ObjectId(logged)
    assert str(oid) == logged
    assert before <= int(oid.generation_time.timestamp()) <= int(time.time())
