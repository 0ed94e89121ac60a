"""Price for size (issue 24): what a quote update costs, and what quote streams cost the Book streams beside them.

``quote_cost`` (in process, no sockets): two venues of 1,000-level books, their levels interleaved, and the time
one quote update takes (the walk net of fees, and the ``QuoteUpdate`` encoded, as the book process does for each
quote streamed on every change of its symbol) for amounts that end inside the 1st, the 10th and the 500th level
of the merged side. The cost should follow the levels walked, not the books' size.

``quote_streams`` (end to end): the latency scenario's market (1,000 frames/s, probes at the best bid) and 100
BookSummary streams, timed by the probes for a window; then 100 Quote streams more (20 distinct requests, 5
streams each: :mod:`tests.bench.quote_clients`), and the Book streams timed again. Target: their p99 rises by at
most 20 %.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from typing import Any

from orderbook.book import VenueBook
from orderbook.consolidated import ConsolidatedBook
from orderbook.prices import SCALE, from_float, parse_decimal
from orderbook.quote import Side
from orderbook.serving.quotes import encode_update
from tests.bench.e2e_scenarios import Options, _measure_probes
from tests.bench.live import PYTHON, REPO_ROOT, ClientGroup, Stack, _env
from tests.bench.report import Figure

LEVELS = 1_000
WALKS = (1, 10, 500)
FEES = {"binance": parse_decimal("0.001"), "bitstamp": parse_decimal("0.004")}


def _books() -> ConsolidatedBook:
    """Two venues of ``LEVELS`` levels a side, 1 unit each, their prices interleaved tick by tick."""
    tick, mid = SCALE // 100_000, 5 * SCALE // 100
    book = ConsolidatedBook(("binance", "bitstamp"), 10)
    with book.lock:
        for offset, venue in enumerate(("binance", "bitstamp")):
            venue_book = VenueBook()
            venue_book.load([(mid - (2 * i + offset + 1) * tick, SCALE) for i in range(LEVELS)],
                            [(mid + (2 * i + offset + 1) * tick, SCALE) for i in range(LEVELS)])
            book.attach(venue, venue_book)
    return book


def _per_update(book: ConsolidatedBook, amount: float, budget: float) -> float:
    """Seconds one quote update takes (the median of batches run for about ``budget`` seconds)."""
    scaled = from_float(amount)

    def update() -> bytes:
        return encode_update(amount, book.quote(Side.BUY, scaled, FEES))

    assert update()  # and warm
    batch = 50
    batches: list[float] = []
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline or len(batches) < 5:
        started = time.perf_counter()
        for _ in range(batch):
            update()
        batches.append((time.perf_counter() - started) / batch)
    return statistics.median(batches)


def quote_cost(quick: bool) -> tuple[list[Figure], dict[str, Any]]:
    book = _books()
    # With the fees, binance (0.1 %) is cheaper than bitstamp (0.4 %) level for level here: n levels walked are
    # the first n of the merged side net of fees, whichever venue they are at; the amount ends half way into the
    # n-th.
    seconds = {walked: _per_update(book, walked - 0.5, 0.3 if quick else 2.0) for walked in WALKS}
    figures = [Figure(f"quote update, {walked} level{'s' if walked > 1 else ''} walked", seconds[walked] * 1e6, "us")
               for walked in WALKS]
    per_level = (seconds[500] - seconds[10]) / 490
    figures.append(Figure("each further level walked", per_level * 1e6, "us",
                          note="(500-level update - 10-level update) / 490: the walk's cost per level"))
    return figures, {"seconds_per_update": seconds, "levels_a_side": LEVELS}


class _QuoteClients:
    """One :mod:`tests.bench.quote_clients` process."""

    def __init__(self, target: str, streams: int, requests: int, channels: int) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "tests.bench.quote_clients", target, "--streams", str(streams), "--requests",
             str(requests), "--channels", str(channels)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env(), cwd=REPO_ROOT, text=True)

    def wait_ready(self) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"quote client process said {line!r} instead of ready")
        return int(line.split()[1])

    def finish(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(30)
        return dict(json.loads(out.strip().splitlines()[-1]))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _window(stack: Stack, seconds: float) -> dict[str, Any]:
    """100 BookSummary streams timed by the probes for ``seconds``."""
    clients = ClientGroup(stack.server.target, processes=2, streams_each=50, channels_each=5)
    try:
        clients.wait_ready()
        time.sleep(1.0)
        summary, _ = _measure_probes(stack, clients, seconds)
    finally:
        clients.kill()
    return summary


def quote_streams(options: Options) -> tuple[list[Figure], dict[str, Any]]:
    window = options.seconds(10, 3)
    with Stack(options.workdir, ["--rate", "500", "--probe-every", "10"],
               ["--taker-fee", "binance=0.001,bitstamp=0.004"], name="server-quotes") as stack:
        stack.server.wait_serving()
        alone = _window(stack, window)
        quotes = _QuoteClients(stack.server.target, streams=100, requests=20, channels=5)
        try:
            started = quotes.wait_ready()
            metrics_before = stack.server.metrics()
            beside = _window(stack, window)
            metrics_after = stack.server.metrics()
            received = quotes.finish()
        finally:
            quotes.kill()
    ratio = beside["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] and beside["p99_ms"] else None
    sent = (metrics_after.value("orderbook_quote_updates_sent_total")
            - metrics_before.value("orderbook_quote_updates_sent_total"))
    details = {"book_streams_alone": alone, "book_streams_beside_quotes": beside, "quote_streams_started": started,
               "quote_updates_received": sum(received["received"]), "quote_errors": received["error_count"],
               "quote_updates_sent_in_window": sent}
    figures = [
        Figure("Book p99, 100 streams alone", alone["p99_ms"], "ms"),
        Figure("Book p99, beside 100 Quote streams", beside["p99_ms"], "ms"),
        Figure("Book p99 beside quotes / alone", ratio, "ratio", 1.2, "lower"),
        Figure("Book p50 beside quotes / alone",
               beside["p50_ms"] / alone["p50_ms"] if alone["p50_ms"] and beside["p50_ms"] else None, "ratio"),
        Figure("Quote streams with an update", started, "streams", 100, "higher"),
    ]
    return figures, details
