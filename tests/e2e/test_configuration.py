"""What a user sees when the configuration is wrong or an exchange is out of reach."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from tests.support.ports import refusing_port
from tests.support.service import REPO_ROOT, RUN_SERVER
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("starts_processes")  # every test runs bin/run-server


def run_server(*args: str, timeout: float = 20, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {name: value for name, value in os.environ.items() if not name.startswith("ORDERBOOK_")} | env
    return subprocess.run(
        [str(RUN_SERVER), "--metrics-addr", "off", *args], capture_output=True, text=True, timeout=timeout,
        env=environ,
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
    result = run_server("--symbol", "NOSUCHPAIR", "--grpc-addr", "127.0.0.1:0",
                        *exchange_args(simulator.urls))
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert "nosuchpair" in line.lower() and ("Binance" in line or "Bitstamp" in line)  # whichever answers first
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--symbol", "NOSUCHPAIR"], {}, "--symbol NOSUCHPAIR: no venue lists it (Binance, Bitstamp)"),
    ([], {"ORDERBOOK_SYMBOL": "ETHBTC,NOSUCHPAIR,XXXYYY"},
     "ORDERBOOK_SYMBOL NOSUCHPAIR, XXXYYY: no venue lists them (Binance, Bitstamp)"),
], ids=["flag", "environment"])
def test_a_symbol_no_venue_lists_is_the_first_and_only_line(simulator_factory, args, env, message):
    """The venues' listings are asked before anything is bound or said: the error is all the user reads, not the
    last of the start-up's lines it proves wrong ("serving the consolidated NOSUCHPAIR book")."""
    simulator = simulator_factory("--rate", "20")
    result = run_server(*args, "--grpc-addr", "127.0.0.1:0", *exchange_args(simulator.urls), **env)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"run-server: error: {message}\n")


def test_with_demo_a_port_in_use_is_the_first_and_only_line():
    """The listeners are bound before the demo's simulator starts: nothing of it is said, nor left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_server("--grpc-addr", address, "--demo")
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", f"run-server: error: --grpc-addr {address}: address already in use\n")


def test_a_port_in_use_is_one_clear_error_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_server("--grpc-addr", address)
    assert result.returncode == 2
    assert result.stderr == f"run-server: error: --grpc-addr {address}: address already in use\n"  # only that


RUN_EDGE = REPO_ROOT / "bin" / "run-edge"
NOWHERE = "redis://127.0.0.1:1/0"
"""An edge's source: never reached, as the edge binds its listeners first."""


@pytest.mark.parametrize("given", ["flag", "environment"])
@pytest.mark.parametrize("listener", ["grpc", "metrics"])
@pytest.mark.parametrize(("program", "prefix", "extra"), [(RUN_SERVER, "ORDERBOOK_", ()),
                                                           (RUN_EDGE, "ORDERBOOK_EDGE_", ("--source", NOWHERE))],
                         ids=["run-server", "run-edge"])
def test_a_port_in_use_is_named_as_the_user_gave_it(program, prefix, extra, listener, given):
    """The address in use is reported under the flag or the variable it came from: the user changes that one."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        settings = {"grpc_addr": "127.0.0.1:0", "metrics_addr": "off", f"{listener}_addr": address}
        environ = {name: value for name, value in os.environ.items() if not name.startswith("ORDERBOOK_")}
        args = [*extra]
        if given == "flag":
            args += [word for dest, value in settings.items() for word in (f"--{dest.replace('_', '-')}", value)]
        else:
            environ |= {f"{prefix}{dest.upper()}": value for dest, value in settings.items()}
        result = subprocess.run([str(program), *args], capture_output=True, text=True, timeout=20, env=environ)
    name = f"--{listener}-addr" if given == "flag" else f"{prefix}{listener.upper()}_ADDR"
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"{program.name}: error: {name} {address}: address already in use\n"  # only that


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


# What the user typed, on the command line or in the environment, and the one line (all of stderr) that answers it.
CONFIGURATION_ERRORS = [
    (["--depth", "0"], {}, "--depth: expected 1 to 1000, got 0"),
    ([], {"ORDERBOOK_DEPTH": "0"}, "ORDERBOOK_DEPTH: expected 1 to 1000, got 0"),
    (["--depth", "ten"], {}, "--depth: expected a whole number, got 'ten'"),
    ([], {"ORDERBOOK_DEPTH": "ten"}, "ORDERBOOK_DEPTH: expected a whole number, got 'ten'"),
    (["--grpc-addr", "127.0.0.1:99999"], {}, "--grpc-addr: the port must be 0-65535, got '127.0.0.1:99999'"),
    ([], {"ORDERBOOK_GRPC_ADDR": "localhost"}, "ORDERBOOK_GRPC_ADDR: expected HOST:PORT, got 'localhost'"),
    (["--log-level", "verbose"], {}, "--log-level: expected one of debug, info, warning, error, got 'verbose'"),
    ([], {"ORDERBOOK_LOG_FORMAT": "xml"}, "ORDERBOOK_LOG_FORMAT: expected one of text, json, got 'xml'"),
    ([], {"ORDERBOOK_DEMO": "maybe"}, "ORDERBOOK_DEMO: expected true or false, got 'maybe'"),
    ([], {"ORDERBOOK_SYMBLO": "ETHBTC"}, "unknown setting ORDERBOOK_SYMBLO (no such flag)"),
    (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
    (["--depth"], {}, "--depth: expected one argument"),
    (["--tls-cert", "cert.pem"], {}, "--tls-cert and --tls-key go together"),
    (["--taker-fee", "kraken=0.001"], {}, "--taker-fee: unknown venue 'kraken' (the venues are binance, bitstamp)"),
    ([], {"ORDERBOOK_TAKER_FEE": "binance=0.25"},
     "ORDERBOOK_TAKER_FEE: binance: expected a fraction from 0 to below 0.1 like 0.001, got '0.25'"),
]


@pytest.mark.parametrize(("args", "env", "message"), CONFIGURATION_ERRORS,
                         ids=[message.split(":")[0] for _, _, message in CONFIGURATION_ERRORS])
def test_every_configuration_error_is_exactly_one_line_on_stderr(args, env, message):
    result = run_server(*args, **env)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"run-server: error: {message}\n")


def test_log_level_in_any_case(tmp_path):
    for args, env in ((["--log-level", "DEBUG"], {}), ([], {"ORDERBOOK_LOG_LEVEL": "Warning"})):
        # Accepted: the error is the depth's. (The ignore: mypy fears an env named timeout.)
        result = run_server(*args, "--depth", "0", **env)  # type: ignore[arg-type]
        assert result.stderr == "run-server: error: --depth: expected 1 to 1000, got 0\n"


@pytest.mark.parametrize(("args", "env"), [(["--log-format", "json", "--depth", "0"], {}),
                                           (["--depth", "ten"], {"ORDERBOOK_LOG_FORMAT": "json"}),
                                           (["--log-format", "JSON", "--bogus"], {})])
def test_with_json_logs_the_error_line_is_json_too(args, env):
    result = run_server(*args, **env)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    entry = json.loads(line)
    assert (entry["level"], entry["logger"]) == ("critical", "run-server")
    assert entry["message"].startswith(("--depth: expected", "unrecognized arguments: --bogus"))


def test_with_json_logs_a_port_in_use_is_one_json_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_server("--grpc-addr", address, "--log-format", "json", "--demo")
    assert result.returncode == 2
    entries = [json.loads(line) for line in result.stderr.splitlines()]  # the demo simulator's lines too
    assert entries[-1]["message"] == f"--grpc-addr {address}: address already in use"
    assert [entry["level"] for entry in entries].count("critical") == 1


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
    with refusing_port() as port:  # held, never listening, for the whole test
        nothing_there = f"127.0.0.1:{port}"
        urls["bitstamp_ws"], urls["bitstamp_rest"] = f"ws://{nothing_there}", f"http://{nothing_there}"
        server = server_factory(urls)
        server.wait_serving()
        reader = reader_factory(server.target)
        reader.wait_for(lambda book: book.exchanges() == {"binance"} and len(book.bids) == 10, 10, "from binance")
        wait_until(lambda: server.log().count(f"bitstamp: cannot connect to ws://{nothing_there}"), 10,
                   "three failed connections to bitstamp logged", accept=lambda failures: failures >= 3)
        assert "reconnecting in" in server.log()
        assert server.terminate() == 0


def test_the_ready_file_reports_the_ports_actually_bound(simulator_factory, server_factory):
    server = server_factory(simulator_factory("--rate", "20").urls, "--metrics-addr", "off")  # gRPC on port 0
    assert server.ports.metrics is None and server.grpc_port > 0
    assert f"on 127.0.0.1 port {server.grpc_port} " in server.log()
    server.wait_serving()  # there


def test_an_unwritable_ready_file_is_one_clear_error_and_exit_2(tmp_path):
    path = tmp_path / "no-such-directory" / "ports.json"
    result = run_server("--grpc-addr", "127.0.0.1:0", "--ready-file", str(path))
    assert result.returncode == 2
    assert error_lines(result) == [f"run-server: error: --ready-file {path}: No such file or directory"]
    assert "Traceback" not in result.stderr
    from_environment = run_server("--grpc-addr", "127.0.0.1:0", ORDERBOOK_READY_FILE=str(path))
    assert error_lines(from_environment) == [f"run-server: error: ORDERBOOK_READY_FILE {path}: No such file or "
                                             "directory"]
