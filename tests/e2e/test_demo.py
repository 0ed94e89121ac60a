"""``bin/run-server --demo``: the README's first command. It serves the simulated book, and its simulator never
outlives it, however the server ends."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a container's init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not running(pid)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_demo_serves_both_venues_and_its_simulator_ends_with_it(server_factory, reader_factory, how):
    server = server_factory(None, "--demo")
    server.wait_serving()
    book = reader_factory(server.target).wait_for(
        lambda book: book.exchanges() == {"binance", "bitstamp"} and len(book.bids) == len(book.asks) == 10,
        20, "with ten levels a side from both venues")
    # The two venues may cross each other (the simulator's markets do, now and then); each venue's own book never.
    assert book.spread == pytest.approx(book.asks[0].price - book.bids[0].price)
    for venue in ("binance", "bitstamp"):
        bids = [row.price for row in book.bids if row.exchange == venue]
        asks = [row.price for row in book.asks if row.exchange == venue]
        assert not bids or not asks or max(bids) < min(asks), venue
    (simulator,) = children(server.proc.pid)
    assert running(simulator)

    server.proc.send_signal(how)
    server.proc.wait(10)
    assert wait_gone(simulator, 5), f"the demo simulator {simulator} outlived the server ({how.name})"


def test_demo_with_json_logs_writes_only_json_its_simulator_included(server_factory, reader_factory):
    server = server_factory(None, "--demo", "--log-format", "json")
    server.wait_serving()
    reader_factory(server.target).wait_for(lambda book: book.exchanges() == {"binance", "bitstamp"}, 20,
                                           "from both venues")
    assert server.terminate() == 0
    entries = [json.loads(line) for line in server.log().splitlines()]  # stdout and stderr, every line
    loggers = {entry["logger"] for entry in entries}
    assert {"orderbook.server", "orderbook.simulator"} <= loggers, loggers  # the simulator's "stopping" line too
    assert all(entry["level"] in ("debug", "info", "warning") for entry in entries), entries


@pytest.mark.parametrize("order", [("BTCUSDT", "ETHBTC"), ("ETHBTC", "BTCUSDT")], ids=["btcusdt-first", "ethbtc-first"])
def test_the_demo_looks_like_the_market_whatever_the_order_of_its_symbols(server_factory, reader_factory, order):
    """Each symbol trades near its real magnitude, not at a price picked by its place in --symbol (BTCUSDT was at
    0.05 when first, 0.40 when second)."""
    server = server_factory(None, "--demo", "--symbol", ",".join(order))
    server.wait_serving()
    bounds = {"BTCUSDT": (1_000, 1_000_000), "ETHBTC": (0.001, 1)}
    for symbol, (low, high) in bounds.items():
        book = reader_factory(server.target, symbol).wait_for(
            lambda book: book.exchanges() == {"binance", "bitstamp"}, 20, f"of {symbol} from both venues")
        assert low < book.bids[0].price < high, (symbol, book.bids[0])
        assert low < book.asks[0].price < high, (symbol, book.asks[0])
