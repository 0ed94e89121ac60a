"""A venue the service cannot keep up with, end to end: the simulator outruns the book process, and the service must
say so (the venue out of ``Symbols``' in-step list, its in-step gauge 0, one log line) within a second of its books
falling ``--max-lag`` behind, never serve a book further behind than that while counting the venue in step, and be
back in step, equal to the truth, once the market calms, without a rebuild.

How far behind the served book is comes from outside the service (:mod:`tests.bench.served_lag`): the simulator's
probe send times against what a ``BookSummary`` client received. What saturates the book process is the frame rate
of 40 symbols on Binance, every one of them read: a client process holds a ``Book`` stream of each symbol
(:data:`READER_DEPTH` levels a side, to keep the client's own share of the two cores small), so that every batch
merges, encodes and publishes each symbol it changed. A symbol nothing reads is only marked held back, and with the
default symbol alone read the book process applies more than the simulator can send on its core: it would never be
pushed behind. Parsing, applying, routing and publishing a frame costs the server about twice what generating and
sending it costs the simulator (0.6 core sends 32,000 frames/s here, one core applies about 26,000), so the
simulator outruns it on any machine. The rate is raised a quarter every half second until Binance falls behind, so
that a faster machine is pushed as far as it takes, and nothing here asserts how fast the machine is. Bitstamp
stays at a calm rate: the default symbol keeps a venue in step throughout, and health stays SERVING.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from tests.bench.live import ClientGroup
from tests.bench.served_lag import Marker, Sighting, SummaryWatcher, lag_bounds, last_surely_under
from tests.bench.symbols import symbol_names
from tests.metrics_scrape import scrape
from tests.support.service import SYMBOLS_METHOD, Book, wait_until_matches_truth

SYMBOLS = symbol_names(40)
DEFAULT = SYMBOLS[0]
LAST = SYMBOLS[-1]
VENUES = ("binance", "bitstamp")
MAX_LAG = 1.0
"""The server's ``--max-lag``: small, so that the books pass it a second or two into the overload."""
REPORTED_WITHIN = 1.0
"""The venue must be out of step within this long of its books passing the bound."""
DELIVERY_SLACK = 0.5
"""What a summary may add to the bound on its way to the client: the server learns a book's lag as it applies a diff,
and the summary built from that book is then sent and read (both processes sharing two cores with the simulator)."""
CALM_RATE = 20.0
"""Events a second per symbol, each venue, outside the overload (40 symbols: 800 frames/s a venue)."""
RAMP_START = 200.0
"""Binance events a second per symbol where the overload ramp starts (8,000 frames/s: kept up with here)."""
RAMP_FACTOR = 1.25
RAMP_STEP_SECONDS = 0.5
"""The rate grows by a quarter every half second, so that the lag passes the bound a second or two after the rate
passes what the server applies, whatever the machine's speed, with summaries on the way."""
RAMP_TOP = 2_500.0
"""100,000 frames/s, past what the simulator itself sends on one core: it then sends as fast as it can."""
TOP_HOLD = 10.0
HOLD_SECONDS = 1.0
"""How long the overload goes on after the service said Binance is behind, before the market calms."""
PROBE_EVERY = 10
"""Every 10th event of the default symbol on each venue is a probe: two a second when calm, dozens in the
overload on Binance."""
WATCHERS = 3
"""``BookSummary`` streams timed against the probes: a book process saturated by its feeds sends each stream only a
few summaries a second, so several streams see more of them."""
READER_DEPTH = 1
"""Levels a side of the ``Book`` stream of every symbol: any depth makes the book process publish the symbol's
full summary on every change; one level sends the client only the changes of the best prices."""
POLL_INTERVAL = 0.05
IN_STEP_WITHIN = 30.0
"""40 symbols: Binance's 100-level snapshots are paced ten a second, Bitstamp's eight."""
CAUGHT_UP_WITHIN = 60.0
"""The backlog is drained at the server's full speed once the rate drops."""


class InStepWatch:
    """Polls ``Symbols`` every :data:`POLL_INTERVAL` on one channel, on a thread of its own: when each answer came
    (``time.monotonic()``, once it is in) and each symbol's venues in step in it."""

    def __init__(self, target: str) -> None:
        self.answers: list[tuple[float, dict[str, frozenset[str]]]] = []
        self.error: grpc.RpcError | None = None
        self._channel = grpc.insecure_channel(target)
        self._symbols = self._channel.unary_unary(
            SYMBOLS_METHOD, request_serializer=orderbook_pb2.Empty.SerializeToString,
            response_deserializer=orderbook_streams_pb2.SymbolList.FromString)
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._poll, name="in-step-watch", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self._symbols(orderbook_pb2.Empty(), timeout=5)
            except grpc.RpcError as error:
                self.error = error
                return
            states = {state.symbol: frozenset(state.exchanges_in_step) for state in answer.symbols}
            with self._changed:
                self.answers.append((time.monotonic(), states))
                self._changed.notify_all()
            self._stop.wait(POLL_INTERVAL)

    def wait(self, accept: Callable[[dict[str, frozenset[str]]], bool], timeout: float,
             since: float = 0.0) -> float | None:
        """When the first answer received after ``since`` that ``accept`` takes came; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for at, states in self.answers[seen:]:
                    if at > since and accept(states):
                        return at
                seen = len(self.answers)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.error is not None:
                    return None
                self._changed.wait(remaining)

    def between(self, start: float, end: float) -> list[dict[str, frozenset[str]]]:
        with self._changed:
            return [states for at, states in self.answers if start < at < end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._channel.close()


def all_in_step(states: dict[str, frozenset[str]]) -> bool:
    return all(states.get(symbol) == frozenset(VENUES) for symbol in SYMBOLS)


def binance_out(states: dict[str, frozenset[str]]) -> bool:
    return "binance" not in states[DEFAULT]


def overload_until_behind(simulator, watch: InStepWatch) -> tuple[float | None, float]:
    """Raise Binance's rate from :data:`RAMP_START` by :data:`RAMP_FACTOR` every :data:`RAMP_STEP_SECONDS` until
    ``Symbols`` says Binance is behind, holding :data:`RAMP_TOP` at most :data:`TOP_HOLD`: when it said so (None if
    it never did), and the rate then."""
    rate, started = RAMP_START, time.monotonic()
    while True:
        simulator.control.set_rate(binance=rate)
        said_at = watch.wait(binance_out, TOP_HOLD if rate >= RAMP_TOP else RAMP_STEP_SECONDS, since=started)
        if said_at is not None or rate >= RAMP_TOP:
            return said_at, rate
        rate = min(RAMP_TOP, rate * RAMP_FACTOR)


@pytest.fixture
def closing() -> Iterator[Callable[[object], object]]:
    """Closes what a test hands it (watchers with a thread and a channel), whatever the outcome."""
    opened: list = []

    def close_later(thing):
        opened.append(thing)
        return thing

    yield close_later
    for thing in reversed(opened):
        thing.close()


def health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


@pytest.mark.alone
def test_a_venue_behind_past_the_bound_is_said_out_of_step_at_once_never_served_late_and_comes_back_exact(
    simulator_factory, server_factory, reader_factory, closing, request
):
    rates = ("--binance-rate", str(CALM_RATE), "--bitstamp-rate", str(CALM_RATE))
    simulator = simulator_factory("--seed", "11", "--symbol", ",".join(SYMBOLS), *rates,
                                  "--probe-every", str(PROBE_EVERY))
    server = server_factory(simulator.urls, "--symbol", ",".join(SYMBOLS), "--binance-snapshot-limit", "100",
                            "--max-lag", str(MAX_LAG))
    server.wait_serving()
    watch = closing(InStepWatch(server.target))
    assert watch.wait(all_in_step, IN_STEP_WITHIN) is not None, f"not all in step:\n{server.log()[-3000:]}"
    every_symbol = ClientGroup(server.target, processes=1, streams_each=0, book_symbols=SYMBOLS,
                               book_depth=READER_DEPTH)
    request.addfinalizer(every_symbol.kill)
    assert every_symbol.wait_ready() == len(SYMBOLS), "not every symbol's Book stream had a summary"
    watchers = [closing(SummaryWatcher(server.target)) for _ in range(WATCHERS)]
    reader = reader_factory(server.target)
    last_reader = reader_factory(server.target, LAST)
    reader.wait_for(lambda book: book.exchanges() == set(VENUES), 10, "with both venues")
    before = scrape(server.metrics_port)

    # Outrun the book process on Binance, the rate growing until the service says it is behind.
    reported_at, rate = overload_until_behind(simulator, watch)
    assert reported_at is not None, (
        f"Binance never said behind at up to {rate * len(SYMBOLS):,.0f} frames/s: "
        f"{scrape(server.metrics_port).by_label('orderbook_book_lag_seconds', 'exchange', 'symbol')}")
    out = scrape(server.metrics_port)
    serving = health(server.target)
    time.sleep(HOLD_SECONDS)  # the overload goes on: Binance must stay out meanwhile
    simulator.control.set_rate(binance=CALM_RATE)
    calmed_at = time.monotonic()

    back_at = watch.wait(all_in_step, CAUGHT_UP_WITHIN, since=calmed_at)
    assert back_at is not None, (f"not back in step {CAUGHT_UP_WITHIN:g} s after the rate dropped:\n"
                                 f"{server.log()[-3000:]}")
    simulator.control.pause()

    def truth(symbol: str) -> Book:
        return Book.from_truth(simulator.control.truth(10, symbol=symbol)["merged"])

    served = wait_until_matches_truth(reader, lambda: truth(DEFAULT), 10)
    assert served.exchanges() == set(VENUES)
    wait_until_matches_truth(last_reader, lambda: truth(LAST), 10)
    after = scrape(server.metrics_port)
    (read,) = every_symbol.finish()
    assert read["error_count"] == 0 and all(read["received"]), read  # every symbol read throughout
    sightings = sorted((s for watcher in watchers for s in watcher.close()), key=lambda sighting: sighting.at)
    bounds = lag_bounds(sightings, simulator.control.probes())
    log = server.log()

    # (a) said out of step within a second of the books passing the bound, by every means it has.
    passed_after = last_surely_under(bounds, "binance", MAX_LAG, before=reported_at)
    assert passed_after is not None, "no summary showed Binance's book under the bound before it was said behind"
    assert reported_at - passed_after <= REPORTED_WITHIN, (
        f"said behind {reported_at - passed_after:.2f} s after the last summary certainly under {MAX_LAG:g} s behind")
    in_step = out.by_label("orderbook_exchange_in_step", "exchange", "symbol")
    wrong = {key: value for key, value in in_step.items() if value != (1.0 if key[0] == "bitstamp" else 0.0)}
    assert len(in_step) == 2 * len(SYMBOLS) and not wrong, f"in step while Binance is behind: {wrong}"
    assert out.value("orderbook_exchange_behind_total", exchange="binance") == 1
    assert serving == health_pb2.HealthCheckResponse.SERVING  # Bitstamp still serves the default symbol
    assert all(binance_out(states) for states in watch.between(reported_at, calmed_at)), "back in step while overloaded"

    # (b) never served further behind than the bound while counted in step.
    late = [b for b in bounds if b.low > MAX_LAG + DELIVERY_SLACK]
    assert not late, f"{len(late)} summaries served more than {MAX_LAG:g} s behind: {late[:5]}"
    lagging = [b for b in bounds if b.exchange == "binance" and b.at < reported_at and b.low >= MAX_LAG / 4]
    assert len(lagging) >= 3, f"too few summaries showed Binance's book lagging to tell: {lagging}"

    # (c) back in step without a rebuild or a reconnect, and equal to the truth (above); one log line an episode.
    assert after.value("orderbook_book_rebuilds_total") == before.value("orderbook_book_rebuilds_total")
    assert after.value("orderbook_exchange_reconnects_total") == before.value("orderbook_exchange_reconnects_total")
    episodes = after.value("orderbook_exchange_behind_total", exchange="binance")
    binance_lines = [line for line in log.splitlines() if "binance: " in line]
    behind_lines = [line for line in binance_lines if f"s behind the venue (bound {MAX_LAG:g} s)" in line]
    caught_up_lines = [line for line in binance_lines if "binance: caught up" in line]
    assert len(behind_lines) == len(caught_up_lines) == episodes >= 1, (episodes, behind_lines, caught_up_lines)
    assert server.terminate() == 0
    assert "Traceback" not in server.log()


# -- the oracle: what a summary's markers prove, on made-up sightings --------------------------------------------


def sighting(at: float, *markers: tuple[int, str, float]) -> Sighting:
    return Sighting(at, tuple(Marker(key, exchange, price) for key, exchange, price in markers))


def test_a_marker_still_served_after_a_later_probe_at_or_below_its_price_proves_the_book_that_far_behind():
    sent = [(1, "binance", 10.0), (2, "binance", 11.0), (3, "bitstamp", 11.5), (4, "binance", 12.0),
            (5, "binance", 13.0), (6, "binance", 14.0)]
    sightings = [
        sighting(10.1, (1, "binance", 0.05)),
        sighting(11.1, (2, "binance", 0.05001)),
        sighting(11.6, (3, "bitstamp", 0.04)),  # another venue's probe proves nothing about Binance's levels
        sighting(12.1, (4, "binance", 0.05002)),  # above marker 2's price: level 0.05001 may still hold it
        sighting(13.1, (5, "binance", 0.05001)),  # at marker 2's price: marker 2 was overwritten at 13.0
        sighting(14.5, (1, "binance", 0.05), (2, "binance", 0.05001)),  # not applied probe 5
        sighting(15.0, (6, "binance", 0.04999)),  # below marker 1's price: level 0.05 had gone by 14.0
    ]
    bounds = {(b.at, b.exchange): (b.low, b.high) for b in lag_bounds(sightings, sent)}
    assert bounds == {
        (10.1, "binance"): (0.0, pytest.approx(0.1)),  # marker 1 was gone by 14.0: proves nothing at 10.1
        (11.1, "binance"): (0.0, pytest.approx(0.1)),
        (11.6, "bitstamp"): (0.0, pytest.approx(0.1)),
        (12.1, "binance"): (0.0, pytest.approx(0.1)),
        (13.1, "binance"): (0.0, pytest.approx(0.1)),
        (14.5, "binance"): (pytest.approx(14.5 - 13.0), pytest.approx(14.5 - 11.0)),  # below: 13.0; above: probe 2
        (15.0, "binance"): (0.0, pytest.approx(1.0)),
    }
    as_bounds = lag_bounds(sightings, sent)
    assert last_surely_under(as_bounds, "binance", 1.0, before=15.1) == 13.1
    assert last_surely_under(as_bounds, "binance", 1.0, before=12.0) == 11.1
    assert last_surely_under(as_bounds, "bitstamp", 1.0, before=15.1) == 11.6
    assert last_surely_under(as_bounds, "binance", 0.05, before=15.1) is None
