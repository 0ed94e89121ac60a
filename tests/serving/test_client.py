"""bin/client: rendering as units, and the real command against the helper server."""

from __future__ import annotations

import io
import json
import math
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from serving_support import CLIENT, Helper, book_summary, run_client

from orderbook.client import (
    Printer,
    quote_to_json,
    render_ladder,
    render_quote,
    render_symbols,
    summary_to_json,
    symbol_to_json,
)
from orderbook.proto import orderbook_pb2, orderbook_quotes_pb2, orderbook_streams_pb2
from orderbook.serving.grpc_server import NO_QUOTES_HERE
from tests.support.processes import with_default_signals

Start = Callable[..., Helper]
RunClient = Callable[..., subprocess.CompletedProcess[str]]


def summary(spread: float, bids: list[tuple[str, float, float]],
            asks: list[tuple[str, float, float]]) -> orderbook_pb2.Summary:
    def levels(side: list[tuple[str, float, float]]) -> list[orderbook_pb2.Level]:
        return [orderbook_pb2.Level(exchange=e, price=p, amount=a) for e, p, a in side]

    return orderbook_pb2.Summary(spread=spread, bids=levels(bids), asks=levels(asks))


SAMPLE = summary(
    0.05124 - 0.05123,  # float noise on purpose: 1.0000000000010001e-05
    [("binance", 0.05123, 1.5), ("bitstamp", 0.1 + 0.2, 12345.678)],
    [("bitstamp", 0.05124, 0.0001)],
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_line_has_the_values_and_null_for_no_spread() -> None:
    assert json.loads(summary_to_json(SAMPLE)) == {
        "spread": 0.05124 - 0.05123,
        "bids": [
            {"exchange": "binance", "price": 0.05123, "amount": 1.5},
            {"exchange": "bitstamp", "price": 0.1 + 0.2, "amount": 12345.678},
        ],
        "asks": [{"exchange": "bitstamp", "price": 0.05124, "amount": 0.0001}],
    }
    one_sided = summary(math.nan, [("binance", 1.0, 2.0)], [])
    line = summary_to_json(one_sided)
    assert "\n" not in line and json.loads(line) == {
        "spread": None,
        "bids": [{"exchange": "binance", "price": 1.0, "amount": 2.0}],
        "asks": [],
    }


def test_ladder_puts_bids_left_asks_right_with_eight_decimals() -> None:
    lines = render_ladder(SAMPLE, 7)
    assert lines[0].split() == ["BIDS", "|", "ASKS"]
    assert lines[1].split() == ["exchange", "amount", "price", "|", "price", "amount", "exchange"]
    assert lines[3].split() == ["binance", "1.50000000", "0.05123000", "|", "0.05124000", "0.00010000", "bitstamp"]
    assert lines[4].split() == ["bitstamp", "12345.67800000", "0.30000000", "|"]
    assert lines[5].startswith("spread 0.00001000 ") and "summary #7" in lines[5]
    assert len(lines) == 6
    assert {line.index("|") for line in (*lines[:2], *lines[3:5])} == {lines[2].index("+")}  # the sides line up


def test_ladder_without_spread_says_so() -> None:
    assert render_ladder(summary(math.nan, [], []), 1)[-1].startswith("spread n/a")


def test_symbols_table_lines_up_and_marks_the_default() -> None:
    states = [orderbook_streams_pb2.SymbolState(symbol="ETHBTC", exchanges=["binance", "bitstamp"],
                                                exchanges_in_step=["binance", "bitstamp"]),
              orderbook_streams_pb2.SymbolState(symbol="BTCUSDT", exchanges=["binance"], exchanges_in_step=[]),
              orderbook_streams_pb2.SymbolState(symbol="X", exchanges=[], exchanges_in_step=[])]
    assert render_symbols(states) == [
        "symbol   exchanges          in step",
        "ETHBTC   binance, bitstamp  binance, bitstamp  (default)",
        "BTCUSDT  binance            -",
        "X        -                  -",
    ]
    assert render_symbols([]) == ["symbol  exchanges  in step"]
    assert json.loads(symbol_to_json(states[1], False)) == {
        "symbol": "BTCUSDT", "exchanges": ["binance"], "exchanges_in_step": [], "default": False}


def test_piped_output_is_plain_blocks_separated_by_a_blank_line() -> None:
    out = io.StringIO()
    printer = Printer(out, as_json=False)
    printer.show(SAMPLE)
    printer.show(SAMPLE)
    text = out.getvalue()
    assert "\x1b" not in text
    first, second = text.split("\n\n")
    assert first.splitlines()[3] == second.splitlines()[3]
    assert "summary #2" in second


def test_terminal_output_redraws_in_place() -> None:
    out = Terminal()
    printer = Printer(out, as_json=False)
    printer.show(SAMPLE)
    first = out.getvalue()
    printer.show(SAMPLE)
    second = out.getvalue()[len(first) :]
    assert first.startswith("\x1b[2J\x1b[H") and second.startswith("\x1b[H") and not second.startswith("\x1b[2J")
    assert second.endswith("\x1b[J")


def test_json_output_stays_json_on_a_terminal() -> None:
    out = Terminal()
    Printer(out, as_json=True).show(SAMPLE)
    assert json.loads(out.getvalue())["bids"][0]["exchange"] == "binance"


# --- the real command -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def streaming_helper(starts_processes: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helper]:
    """ETHBTC (the default) and BTCUSDT, a summary of each every 20 ms: one server for the tests whose clients only
    read from it (no command to it, no limit reached, every client gone at the end of its test)."""
    helper = Helper(["--interval", "0.02", "--symbols", "ETHBTC,BTCUSDT"],
                    tmp_path_factory.mktemp("client") / "helper.stderr")
    try:
        yield helper
    finally:
        helper.close()


def test_json_count_prints_that_many_summaries_with_the_served_values(streaming_helper: Helper) -> None:
    helper = streaming_helper
    result = run_client("--addr", helper.target, "--json", "--count", "3")
    assert (result.returncode, result.stderr) == (0, "")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    numbers = [line["bids"][0]["amount"] for line in lines]
    assert numbers == sorted(set(numbers))
    for line in lines:
        assert line["spread"] == 1e-05
        assert line["bids"][0] | {"amount": 0} == {"exchange": "binance", "price": 0.05123, "amount": 0}
        assert [level["price"] for level in line["bids"][1:3]] == [0.05122, 0.05121]
        assert [(level["exchange"], level["price"], level["amount"]) for level in line["asks"][:2]] == [
            ("binance", 0.05124, 2.0),
            ("bitstamp", 0.05125, 2.0),
        ]
        assert len(line["bids"]) == len(line["asks"]) == 10


def test_one_sided_book_prints_null_spread(start_helper: Start) -> None:
    helper = start_helper("--interval", "0")
    helper.command("empty")
    result = run_client("--addr", helper.target, "--json", "--count", "1")
    assert result.returncode == 0
    line = json.loads(result.stdout)
    assert line["spread"] is None and line["asks"] == [] and len(line["bids"]) == 10


def test_ladder_output_when_piped(start_helper: Start) -> None:
    helper = start_helper("--interval", "0.02", "--depth", "3")
    result = run_client("--addr", helper.target, "--count", "2")
    assert result.returncode == 0
    blocks = result.stdout.split("\n\n")
    assert len(blocks) == 2 and "\x1b" not in result.stdout
    rows = blocks[1].splitlines()
    assert rows[4].split() == ["bitstamp", "0.50000000", "0.05122000", "|", "0.05125000", "2.00000000", "bitstamp"]
    assert rows[-1].startswith("spread 0.00001000")


def test_symbol_and_depth_stream_that_symbols_top_levels(streaming_helper: Helper) -> None:
    helper = streaming_helper
    result = run_client("--addr", helper.target, "--symbol", "btcusdt", "--depth", "3", "--json", "--count", "2")
    assert (result.returncode, result.stderr) == (0, "")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert [level["price"] for level in line["bids"]] == [1.05123, 1.05122, 1.05121]  # the second symbol's
        assert [level["price"] for level in line["asks"]] == [1.05124, 1.05125, 1.05126]
        assert line["spread"] == pytest.approx(1e-05)
    default = run_client("--addr", helper.target, "--depth", "2", "--json", "--count", "1")
    assert default.returncode == 0
    line = json.loads(default.stdout)
    assert [level["price"] for level in line["bids"]] == [0.05123, 0.05122] and len(line["asks"]) == 2


def test_list_prints_the_symbols_as_a_table_or_json_lines(start_helper: Start) -> None:
    helper = start_helper("--interval", "0", "--symbols", "ETHBTC,BTCUSDT")
    helper.command("state ETHBTC binance,bitstamp bitstamp")
    result = run_client("--addr", helper.target, "--list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ("symbol   exchanges          in step\n"
                             "ETHBTC   binance, bitstamp  bitstamp  (default)\n"
                             "BTCUSDT  -                  -\n")
    as_json = run_client("--addr", helper.target, "--list", "--json")
    assert as_json.returncode == 0
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"symbol": "ETHBTC", "exchanges": ["binance", "bitstamp"], "exchanges_in_step": ["bitstamp"], "default": True},
        {"symbol": "BTCUSDT", "exchanges": [], "exchanges_in_step": [], "default": False},
    ]


def test_an_unknown_symbol_or_too_deep_a_book_is_one_clear_line_and_exit_2(streaming_helper: Helper) -> None:
    helper = streaming_helper
    unknown = run_client("--addr", helper.target, "--symbol", "XRPEUR")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr == (f"client: error: the order book server at {helper.target} does not serve 'XRPEUR' "
                              "(--list shows the symbols it serves)\n")
    too_deep = run_client("--addr", helper.target, "--symbol", "BTCUSDT", "--depth", "11")
    assert (too_deep.returncode, too_deep.stdout) == (2, "")
    assert too_deep.stderr == (f"client: error: the order book server at {helper.target} refused the request: depth "
                               "11 is more than the 10 levels a side this server serves (ask for 1 to 10, or 0 for "
                               "all)\n")


def test_closed_port_is_one_clear_line_and_exit_2(client_command: RunClient, closed_port: int) -> None:
    result = client_command("--addr", f"127.0.0.1:{closed_port}")
    assert result.returncode == 2
    expected = f"client: error: cannot reach the order book server at 127.0.0.1:{closed_port} (connection refused)\n"
    assert result.stderr == expected
    assert result.stdout == ""


def test_unresolvable_address_is_one_clear_line_and_exit_2(client_command: RunClient) -> None:
    result = client_command("--addr", "no-such-host.invalid:5002", "--timeout", "3")
    assert result.returncode == 2
    assert result.stderr.startswith("client: error: cannot reach the order book server at no-such-host.invalid:5002 (")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_full_server_is_one_clear_line_and_exit_2(start_helper: Start) -> None:
    helper = start_helper("--interval", "0.05", "--max-streams", "1")
    with grpc.insecure_channel(helper.target) as channel:
        holder = book_summary(channel)(orderbook_pb2.Empty(), timeout=15)
        next(holder)
        result = run_client("--addr", helper.target)
        holder.cancel()
    assert result.returncode == 2
    assert result.stderr == f"client: error: the order book server at {helper.target} has no room for another stream\n"


def test_tls_client_with_the_ca(start_helper: Start, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    helper = start_helper("--interval", "0.02", "--tls-cert", str(cert), "--tls-key", str(key))
    result = run_client("--addr", helper.target, "--tls-ca", str(cert), "--json", "--count", "1")
    assert result.returncode == 0 and json.loads(result.stdout)["bids"][0]["price"] == 0.05123
    plain = run_client("--addr", helper.target, "--json", "--count", "1", "--timeout", "2")
    assert plain.returncode == 2
    assert plain.stderr == (f"client: error: the order book server at {helper.target} closed the connection: it may "
                            "require TLS (pass --tls-ca PATH)\n")


def test_a_tls_ca_that_is_no_certificate_is_one_line_naming_it_and_exit_2(client_command: RunClient, tmp_path: Path,
                                                                          closed_port: int) -> None:
    junk, missing = tmp_path / "junk.pem", tmp_path / "missing.pem"
    junk.write_text("not a certificate\n")
    for path, reason in ((junk, "not a PEM certificate (expected -----BEGIN CERTIFICATE-----)"),
                         (missing, "No such file or directory")):
        result = client_command("--addr", f"127.0.0.1:{closed_port}", "--tls-ca", str(path))
        assert (result.returncode, result.stdout, result.stderr) == (2, "", f"client: error: --tls-ca {path}: "
                                                                            f"{reason}\n")


def test_a_tls_server_the_ca_does_not_vouch_for_is_one_line(
        start_helper: Start, tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    """A valid certificate, not the server's: the handshake fails, and the client says so once, in its own words
    (gRPC core's log is off: tests/test_boot.py)."""
    cert, key = tls_files
    helper = start_helper("--interval", "0.05", "--tls-cert", str(cert), "--tls-key", str(key))
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout",
                    str(tmp_path / "other.key"), "-out", str(other), "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    result = run_client("--addr", helper.target, "--tls-ca", str(other), "--timeout", "3")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"client: error: cannot reach the order book server at {helper.target} (")
    assert result.stderr.count("\n") == 1, result.stderr


def test_server_shutdown_ends_the_client_with_a_message(start_helper: Start) -> None:
    helper = start_helper("--interval", "0.05")
    client = subprocess.Popen(
        [str(CLIENT), "--addr", helper.target, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert client.stdout is not None
    json.loads(client.stdout.readline())
    assert helper.terminate() == 0
    _, stderr = client.communicate(timeout=10)
    assert client.returncode == 1
    assert stderr == (f"client: error: the order book server at {helper.target} ended the stream (the server is "
                      "shutting down; reconnect, possibly elsewhere)\n")


def test_a_server_shutting_down_sends_the_client_on_to_the_next_address(start_helper: Start) -> None:
    first, second = start_helper("--interval", "0.05"), start_helper("--interval", "0.05", "--depth", "5")
    client = subprocess.Popen([str(CLIENT), "--addr", f"{first.target},{second.target}", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None and client.stderr is not None
        json.loads(client.stdout.readline())
        assert first.terminate() == 0
        assert client.stderr.readline() == (f"client: the order book server at {first.target} ended the stream (the "
                                            "server is shutting down; reconnect, possibly elsewhere); going on from "
                                            f"{second.target}\n")
        depths = [len(json.loads(client.stdout.readline())["bids"]) for _ in range(50)]  # the first's come first
        assert depths[-1] == 5 and client.poll() is None  # the second one's
    finally:
        client.kill()
        client.communicate(timeout=10)


def test_ctrl_c_exits_quietly(streaming_helper: Helper) -> None:
    helper = streaming_helper
    client = subprocess.Popen(
        with_default_signals([CLIENT, "--addr", helper.target]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    client.stdout.readline()
    time.sleep(0.1)
    client.send_signal(signal.SIGINT)
    _, stderr = client.communicate(timeout=10)
    assert client.returncode == 130
    assert stderr == ""


CLIENT_USAGE_ERRORS = [
    (["--addr", "127.0.0.1"], "--addr: expected HOST:PORT, got '127.0.0.1'"),
    (["--addr", "127.0.0.1:99999"], "--addr: the port must be 1-65535, got '127.0.0.1:99999'"),
    (["--count", "abc"], "--count: expected a positive whole number, got 'abc'"),
    (["--count", "0"], "--count: expected a positive whole number, got '0'"),
    (["--timeout", "soon"], "--timeout: expected a positive number of seconds, got 'soon'"),
    (["--timeout", "-1"], "--timeout: expected a positive number of seconds, got '-1'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--count"], "--count: expected one argument"),
    (["--depth", "0"], "--depth: expected a positive whole number, got '0'"),
    (["--list", "--count", "1"], "--list: lists the symbols and exits: it takes no --count"),
    (["--list", "--symbol", "ETHBTC"], "--list: lists the symbols and exits: it takes no --symbol"),
    (["--list", "--depth", "3"], "--list: lists the symbols and exits: it takes no --depth"),
]


@pytest.mark.parametrize(("args", "message"), CLIENT_USAGE_ERRORS, ids=[" ".join(a) for a, _ in CLIENT_USAGE_ERRORS])
def test_a_bad_command_line_is_one_line_naming_what_was_typed(client_command: RunClient, args: list[str],
                                                             message: str) -> None:
    result = client_command(*args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"client: error: {message}\n")


def test_help_explains_every_flag(client_command: RunClient) -> None:
    result = client_command("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "(default 127.0.0.1:5002)" in text and "(default 5.0)" in text
    assert "--timeout SECONDS how long to wait for the server to accept the connection" in text
    assert "--symbol SYMBOL the symbol to stream" in text and "--depth N levels a side" in text
    assert "--list print the symbols the server serves" in text
    assert ("1 the server ended the stream (one that stops says why), or the connection was lost after a summary"
            in text)  # README "The client": a stream that ends exits 1
    assert "130 interrupted (Ctrl-C)" in text


# -- --quote ---------------------------------------------------------------------------------------------------


def test_a_quote_line_has_the_fill_prices_cost_and_split() -> None:
    update = orderbook_quotes_pb2.QuoteUpdate(amount=3, filled=3, average_price=32 / 3, worst_price=11, cost=32,
                                              fills=[orderbook_quotes_pb2.Fill(exchange="bitstamp", amount=2,
                                                                               average_price=11),
                                                     orderbook_quotes_pb2.Fill(exchange="binance", amount=1,
                                                                               average_price=10)])
    line = render_quote(update)
    assert line.startswith("filled 3.00000000 of 3.00000000  average 10.66666667  worst 11.00000000  cost "
                           "32.00000000  by venue: bitstamp 2.00000000 @ 11.00000000, binance 1.00000000 @ "
                           "10.00000000  at ")
    nothing = orderbook_quotes_pb2.QuoteUpdate(amount=1, average_price=math.nan, worst_price=math.nan)
    assert "average n/a  worst n/a  cost 0.00000000  by venue: -" in render_quote(nothing)
    assert json.loads(quote_to_json(nothing)) == {"amount": 1, "filled": 0, "average_price": None,
                                                  "worst_price": None, "cost": 0, "fills": []}


def test_quote_streams_one_line_per_update_as_text_or_json(start_helper: Start) -> None:
    helper = start_helper("--interval", "0", "--symbols", "ETHBTC,BTCUSDT", "--taker-fee", "bitstamp=0.001")
    helper.command("book BTCUSDT bitstamp 99:2 100:1,101:4")
    as_json = run_client("--addr", helper.target, "--quote", "2", "--side", "sell", "--net", "--symbol", "btcusdt",
                         "--json", "--count", "1")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"amount": 2, "filled": 2, "average_price": 98.901, "worst_price": 99,
                                          "cost": 197.802, "fills": [{"exchange": "bitstamp", "amount": 2,
                                                                      "average_price": 98.901}]}
    as_text = run_client("--addr", helper.target, "--quote", "1.5", "--symbol", "BTCUSDT", "--count", "1")
    assert as_text.returncode == 0, as_text.stderr
    assert as_text.stdout.startswith("filled 1.50000000 of 1.50000000  average 100.33333333  worst 101.00000000  "
                                     "cost 150.50000000  by venue: bitstamp 1.50000000 @ 100.33333333")
    assert as_text.stdout.count("\n") == 1


def test_quote_mistakes_are_one_line_and_exit_2(start_helper: Start) -> None:
    for argv, message in [(["--quote", "0"], "--quote: expected an amount above 0, got '0'"),
                          (["--quote", "nan"], "--quote: expected an amount above 0, got 'nan'"),
                          (["--side", "sell"], "--side: goes with --quote AMOUNT"),
                          (["--net"], "--net: goes with --quote AMOUNT"),
                          (["--quote", "1", "--depth", "2"], "--quote: walks every level the server holds: it takes "
                           "no --depth"),
                          (["--quote", "1", "--side", "short"], "--side: expected one of buy, sell, got 'short'")]:
        result = run_client(*argv)
        assert (result.returncode, result.stderr) == (2, f"client: error: {message}\n"), argv
    edge = start_helper("--interval", "0", "--no-quotes")
    refused = run_client("--addr", edge.target, "--quote", "1")
    assert refused.returncode == 2
    assert refused.stderr == f"client: error: the order book server at {edge.target} serves no quotes: " \
                             f"{NO_QUOTES_HERE}\n"
