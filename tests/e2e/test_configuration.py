"""What a user sees when the configuration is wrong or an exchange is out of reach."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from e2e_harness import RUN_SERVER, free_port

pytestmark = pytest.mark.e2e


def run_server(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUN_SERVER), "--metrics-addr", "off", *args], capture_output=True, text=True, timeout=timeout
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("run-server: error:")]


def exchange_args(urls: dict[str, str]) -> list[str]:
    return [
        "--binance-ws-url", urls["binance_ws"], "--binance-rest-url", urls["binance_rest"],
        "--bitstamp-ws-url", urls["bitstamp_ws"], "--bitstamp-rest-url", urls["bitstamp_rest"],
    ]


def test_an_unknown_symbol_is_one_clear_error_and_exit_2(simulator_factory):
    simulator = simulator_factory("--rate", "20")
    result = run_server("--symbol", "NOSUCHPAIR", "--grpc-addr", f"127.0.0.1:{free_port()}",
                        *exchange_args(simulator.urls))
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert "nosuchpair" in line.lower() and ("Binance" in line or "Bitstamp" in line)  # whichever answers first
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_one_clear_error_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_server("--grpc-addr", address)
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert address in line and "in use" in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--grpc-addr", "localhost"), ("--grpc-addr", "127.0.0.1:70000"), ("--metrics-addr", "nowhere"),
     ("--binance-ws-url", "ftp://example"), ("--symbol", "ETH/BTC"), ("--depth", "0")],
)
def test_malformed_settings_are_one_clear_error_and_exit_2(flag, value):
    result = run_server(flag, value)
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert flag in line
    assert "Traceback" not in result.stderr


def test_an_unknown_environment_setting_is_refused():
    result = subprocess.run([str(RUN_SERVER)], capture_output=True, text=True, timeout=20,
                            env={"PATH": "/usr/bin:/bin", "ORDERBOOK_SYMBLO": "ETHBTC"})
    assert result.returncode == 2
    assert error_lines(result) == ["run-server: error: unknown setting ORDERBOOK_SYMBLO (no such flag)"]


def test_an_unreachable_exchange_is_logged_and_retried_while_the_other_is_served(
    simulator_factory, server_factory, reader_factory
):
    simulator = simulator_factory("--rate", "50")
    urls = dict(simulator.urls)
    nothing_there = f"127.0.0.1:{free_port()}"
    urls["bitstamp_ws"], urls["bitstamp_rest"] = f"ws://{nothing_there}", f"http://{nothing_there}"
    server = server_factory(urls)
    server.wait_serving()
    reader = reader_factory(server.target)
    reader.wait_for(lambda book: book.exchanges() == {"binance"} and len(book.bids) == 10, 10, "from binance")
    deadline = time.monotonic() + 10
    while server.log().count(f"bitstamp: cannot connect to ws://{nothing_there}") < 3:
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.2)
    assert "reconnecting in" in server.log()
    assert server.terminate() == 0
