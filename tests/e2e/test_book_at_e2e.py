"""``bin/book-at`` against a real recording: a simulator session with faults (a Binance gap, a stale snapshot on
the rebuild that follows another, a dropped connection on each venue, Bitstamp asking the service to reconnect)
recorded by ``bin/run-server --record``; at a dozen moments the market is paused until the server serves the
simulator's truth, and the moment taken then. Afterwards ``bin/book-at`` at each of them prints that truth.

A moment is taken while the market stands still and the served book is the truth: any TIME in the pause gives the
same book, however late the server's frames were read on a loaded machine."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from orderbook.simulator.process import SimulatorProcess
from tests.support.service import REPO_ROOT, Book, BookReader, ServerProcess, wait_until_matches_truth

BOOK_AT = REPO_ROOT / "bin" / "book-at"
FAULTS: dict[int, Callable[[SimulatorProcess], object]] = {
    2: lambda simulator: simulator.control.gap(),
    4: lambda simulator: (simulator.control.stale_snapshot(), simulator.control.gap()),
    6: lambda simulator: simulator.control.drop("binance"),
    8: lambda simulator: simulator.control.request_reconnect(after=0.5),
    10: lambda simulator: simulator.control.drop("bitstamp"),
}
"""Injected before the market runs on, at these of the moments."""


def _json_truth(merged: dict) -> dict:
    """The simulator's merged top as ``bin/client --json`` prints it."""

    def levels(side: list[dict]) -> list[dict]:
        return [{"exchange": level["exchange"], "price": float(Decimal(level["price"])),
                 "amount": float(Decimal(level["amount"]))} for level in side]

    spread = merged["spread"]
    return {"spread": None if spread is None else float(Decimal(spread)), "bids": levels(merged["bids"]),
            "asks": levels(merged["asks"])}


def test_the_book_at_a_dozen_moments_of_a_faulty_session_is_the_truth_then(
        simulator_factory: Callable[..., SimulatorProcess], server_factory: Callable[..., ServerProcess],
        reader_factory: Callable[..., BookReader], tmp_path: Path) -> None:
    simulator = simulator_factory("--rate", "40")
    recording = tmp_path / "recording"
    server = server_factory(simulator.urls, "--record", str(recording), "--record-summaries")
    server.wait_serving()
    reader = reader_factory(server.target)
    moments: list[tuple[float, dict]] = []
    for index in range(12):
        FAULTS.get(index, lambda _simulator: None)(simulator)
        time.sleep(0.7)  # the market moves on (and the fault plays out)
        simulator.control.pause()
        served = wait_until_matches_truth(reader, lambda: Book.from_truth(simulator.control.truth(10)["merged"]), 30)
        assert served.exchanges() == {"binance", "bitstamp"}
        moments.append((time.time(), _json_truth(simulator.control.truth(10)["merged"])))
        simulator.control.resume()
    assert server.terminate() == 0
    log = server.log()
    for played in ("binance ETHBTC: rebuilding the book: gap", "is older than the stream",
                   "binance: session ended (disconnect)", "bitstamp: session ended (server_request)",
                   "bitstamp: session ended (disconnect)"):
        assert played in log, played
    for at, expected in moments:
        result = subprocess.run([str(BOOK_AT), str(recording), "--at", f"{at:.6f}", "--json"], capture_output=True,
                                text=True, timeout=120)
        assert (result.returncode, result.stderr) == (0, ""), at
        assert json.loads(result.stdout) == expected, at
