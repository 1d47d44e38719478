"""What each pod lets its clients hold (issue 26): connections per port, TLS
handshakes, HTTP/2 streams, /metrics responses and the write timeout, from values to both
services' environment, bounded by the schema."""

import helm_python
import pytest
from chart_helpers import render

CONNECTION_SETTINGS = {
    "MAX_CONNECTIONS": "2500",
    "ADMIN_MAX_CONNECTIONS": "256",
    "HTTP2_MAX_CONCURRENT_STREAMS": "128",
    "HTTP_WRITE_TIMEOUT": "10s",
    "ADMIN_MAX_CONCURRENT_STREAMS": "16",
    "ADMIN_MAX_METRICS_RESPONSES": "4",
}


def test_defaults_reach_both_services_as_the_binaries_own_defaults(default):
    for service in ("service1", "service2"):
        config = default.config(service)
        assert {k: config[k] for k in CONNECTION_SETTINGS} == CONNECTION_SETTINGS
    assert default.config("service1")["MAX_TLS_HANDSHAKES"] == "128"
    assert default.config("service1")["GRPC_MAX_CONNECTIONS"] == "512"
    assert "MAX_TLS_HANDSHAKES" not in default.config("service2")
    assert "GRPC_MAX_CONNECTIONS" not in default.config("service2")


def test_changed_values_reach_both_services():
    rendered = render(
        {
            "connections": {
                "max": 100,
                "adminMax": 10,
                "http2MaxConcurrentStreams": 8,
                "writeTimeoutSeconds": 3,
                "adminMaxConcurrentStreams": 2,
                "adminMaxMetricsResponses": 9,
            },
            "service1": {"maxTlsHandshakes": 16, "grpcMaxConnections": 32},
        }
    )
    for service in ("service1", "service2"):
        config = rendered.config(service)
        assert {k: config[k] for k in CONNECTION_SETTINGS} == {
            "MAX_CONNECTIONS": "100",
            "ADMIN_MAX_CONNECTIONS": "10",
            "HTTP2_MAX_CONCURRENT_STREAMS": "8",
            "HTTP_WRITE_TIMEOUT": "3s",
            "ADMIN_MAX_CONCURRENT_STREAMS": "2",
            "ADMIN_MAX_METRICS_RESPONSES": "9",
        }
    assert rendered.config("service1")["MAX_TLS_HANDSHAKES"] == "16"
    assert rendered.config("service1")["GRPC_MAX_CONNECTIONS"] == "32"


@pytest.mark.parametrize(
    "values, path",
    [
        ({"connections": {"max": 0}}, "/connections/max"),
        ({"connections": {"adminMax": 0}}, "/connections/adminMax"),
        ({"connections": {"http2MaxConcurrentStreams": 1025}}, "/connections/http2MaxConcurrentStreams"),
        ({"connections": {"writeTimeoutSeconds": 0}}, "/connections/writeTimeoutSeconds"),
        ({"connections": {"adminMaxConcurrentStreams": 0}}, "/connections/adminMaxConcurrentStreams"),
        ({"connections": {"adminMaxMetricsResponses": 1025}}, "/connections/adminMaxMetricsResponses"),
        ({"connections": {"maxConnections": 5}}, "/connections"),
        ({"service1": {"maxTlsHandshakes": 0}}, "/service1/maxTlsHandshakes"),
        ({"service1": {"grpcMaxConnections": 0}}, "/service1/grpcMaxConnections"),
    ],
)
def test_the_schema_refuses_what_the_services_would_refuse(values, path):
    with pytest.raises(helm_python.HelmValuesError) as info:
        render(values)
    assert path in str(info.value)
