"""Our service2 in front of a stock gRPC server: grpcio with its default
keepalive policy (gRFC A8), as the original's service1 runs. Such a server
takes any ping on a connection without calls as a strike and answers the
third with GOAWAY `too_many_pings`, which costs the client its connection.
"""

import json
import time
import urllib.request
from concurrent import futures

import grpc
import pytest

from ours import METHOD, Service, decode, encode

# Long enough for a client pinging idle connections every 100 ms to collect
# its three strikes several times over.
IDLE = 1.5


class StockService1:
    """ProcessName on grpcio with stock settings; notes each caller's
    address, which changes when the client has to reconnect."""

    def __init__(self):
        self.peers = []
        handler = grpc.method_handlers_generic_handler(
            "app.grpc.Service1",
            {
                "ProcessName": grpc.unary_unary_rpc_method_handler(
                    self.process_name, request_deserializer=decode, response_serializer=encode
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def process_name(self, name, context):
        self.peers.append(context.peer())
        return name.upper()


@pytest.fixture
def stock_service1():
    server = StockService1()
    yield server
    server.server.stop(grace=None)


def say_hello(service2, name):
    url = f"http://{service2.listening['rest']}/api/v1/say-hello?name={name}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def two_calls_around_an_idle_spell(stock_service1, env):
    """The peers the stock server saw for a call, then another after IDLE."""
    service2 = Service("service2", {"SERVICE1_CHANNEL": f"127.0.0.1:{stock_service1.port}", **env})
    try:
        assert say_hello(service2, "a") == "Hello, A!"
        time.sleep(IDLE)
        assert say_hello(service2, "b") == "Hello, B!"
    finally:
        service2.stop()
    return stock_service1.peers


def test_service2_keeps_its_connection_to_a_stock_server_through_idle_spells(stock_service1):
    # Even with pings due every 100 ms, none goes out while no call is open.
    first, second = two_calls_around_an_idle_spell(
        stock_service1, {"SERVICE1_KEEPALIVE_INTERVAL": "100ms"}
    )

    assert first == second, "service2 had to reconnect: the stock server sent GOAWAY"


def test_pinging_idle_connections_costs_the_connection_to_a_stock_server(stock_service1):
    # What the setting is for, and what the default avoids.
    first, second = two_calls_around_an_idle_spell(
        stock_service1,
        {"SERVICE1_KEEPALIVE_INTERVAL": "100ms", "SERVICE1_KEEPALIVE_WHILE_IDLE": "true"},
    )

    assert first != second, "the stock server kept a connection that pinged while idle"
