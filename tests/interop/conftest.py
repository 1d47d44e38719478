"""Fixtures the interop tests share: our service1 as a process, plaintext
(as the original runs), and a grpcio channel to it."""

import grpc
import pytest

from ours import START_TIMEOUT, Service


@pytest.fixture(scope="module")
def service1():
    service = Service("service1", {"GRPC_PORT": "0"})
    yield service
    service.stop()


@pytest.fixture(scope="module")
def channel(service1):
    channel = grpc.insecure_channel(service1.listening["grpc"])
    grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
    yield channel
    channel.close()
