"""Standard gRPC tooling's view of the service (health, reflection) and its logs, end to end."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.metrics_scrape import scrape
from tests.support.waiting import wait_until

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def wait_health(target: str, service: str, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = None
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
            if status == expected:
                return
            time.sleep(0.1)
    raise AssertionError(f"health of {service!r} stayed {status}, expected {expected}")


def test_health_is_serving_only_while_an_exchange_is_in_step(simulator_factory, server_factory):
    simulator = simulator_factory("--rate", "50")
    server = server_factory(simulator.urls, "--silence-timeout", "2")
    server.wait_serving()
    for service in ("", "orderbook.OrderbookAggregator"):
        wait_health(server.target, service, SERVING, 20)

    simulator.control.silence("bitstamp")  # one exchange out of step: still serving the other
    wait_until(lambda: "bitstamp: session ended (silence)" in server.log(), 10, "bitstamp's silence noticed")
    wait_health(server.target, "orderbook.OrderbookAggregator", SERVING, 1)

    simulator.control.silence("binance")  # both out: nothing can be vouched for
    for service in ("", "orderbook.OrderbookAggregator"):
        wait_health(server.target, service, NOT_SERVING, 6)

    simulator.control.silence("binance", on=False)
    simulator.control.silence("bitstamp", on=False)
    wait_health(server.target, "orderbook.OrderbookAggregator", SERVING, 15)
    assert server.terminate() == 0


def test_json_logs_are_one_object_per_line_and_quiet_per_frame(simulator_factory, server_factory):
    simulator = simulator_factory("--rate", "400")
    server = server_factory(simulator.urls, "--log-format", "json")
    server.wait_serving()
    wait_until(lambda: scrape(server.metrics_port).value("orderbook_frames_received_total"), 10,
               "800 frames received", accept=lambda frames: frames >= 800)  # a second or so
    assert server.terminate() == 0
    lines = [line for line in server.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("binance ETHBTC: in step from snapshot") for m in messages)
    assert any(m.startswith("bitstamp ETHBTC: in step from snapshot") for m in messages)
    assert len(entries) < 30, "info logging must not grow with the number of frames"


def test_plaintext_clients_against_tls_leave_no_grpc_core_line_in_json_logs(
    simulator_factory, server_factory, tls_files
):
    """gRPC core logs one line per failed TLS handshake, outside Python's logging: it is kept off, so a flood of
    plaintext clients can neither break --log-format json nor flood the log."""
    cert, key = tls_files
    simulator = simulator_factory("--rate", "20")
    server = server_factory(simulator.urls, "--log-format", "json", "--tls-cert", str(cert), "--tls-key", str(key))
    credentials = grpc.ssl_channel_credentials(cert.read_bytes())
    with grpc.secure_channel(server.target, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 20
        while stub.Check(health_pb2.HealthCheckRequest(), timeout=5, wait_for_ready=True).status != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    for _ in range(30):
        with grpc.insecure_channel(server.target) as plain, pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=1)
    assert server.terminate() == 0
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert all(json.loads(line) for line in lines)  # raises on a raw core line
    assert len(lines) < 30
