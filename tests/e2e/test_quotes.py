"""OrderbookQuotes.Quote end to end: simulator, bin/run-server (from the book process, and from two serving
processes), gRPC clients. With the market paused, every quote a client holds equals the walk over the simulator's
true books (every level of both venues), for several amounts and both sides, gross and net of the taker fees; and a
stream opened then gets exactly that, at once, and nothing more while the market stays still."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import grpc
import pytest

from orderbook.book import PriceLevel
from orderbook.prices import from_float, parse_decimal
from orderbook.proto import orderbook_quotes_pb2
from orderbook.quote import Side, walk
from orderbook.serving.quotes import encode_update
from tests.support.service import symbol_states
from tests.support.waiting import wait_until

QUOTE_METHOD = "/orderbook.OrderbookQuotes/Quote"
FEES = {"binance": parse_decimal("0.001"), "bitstamp": parse_decimal("0.004")}
SIDES = {orderbook_quotes_pb2.BUY: Side.BUY, orderbook_quotes_pb2.SELL: Side.SELL}
MODES = {"book process": (), "two serving processes": ("--serve-processes", "2")}


@dataclass
class QuoteReader:
    """One Quote stream read on a thread: every update received, the latest last."""

    target: str
    request: orderbook_quotes_pb2.QuoteRequest
    updates: list[orderbook_quotes_pb2.QuoteUpdate] = field(default_factory=list)
    error: grpc.RpcError | None = None

    def __post_init__(self) -> None:
        self._channel = grpc.insecure_channel(self.target)
        method = self._channel.unary_stream(QUOTE_METHOD, orderbook_quotes_pb2.QuoteRequest.SerializeToString,
                                            orderbook_quotes_pb2.QuoteUpdate.FromString)
        self._call = method(self.request, wait_for_ready=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for update in self._call:
                self.updates.append(update)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)
        self._channel.close()


def levels(rows: list[list[str]]) -> list[PriceLevel]:
    return [(parse_decimal(price), parse_decimal(amount)) for price, amount in rows]


def expected_update(truth: dict, request: orderbook_quotes_pb2.QuoteRequest) -> bytes:
    """The walk over the simulator's true books, both venues, as the service serializes it."""
    side = SIDES[request.side]
    sides = {venue: iter(levels(truth[venue]["asks" if side is Side.BUY else "bids"])) for venue in FEES}
    quote = walk(sides, side, from_float(request.amount), FEES if request.net_of_fees else None)
    return encode_update(request.amount, quote)


def served(update: orderbook_quotes_pb2.QuoteUpdate) -> bytes:
    """An update as the server serialized it (compared as bytes: NaN is not equal to itself)."""
    return update.SerializeToString(deterministic=True)


def amounts_within(truth: dict, venue_side: str, counts: tuple[int, ...]) -> list[float]:
    """Amounts that end inside the level after the best ``count`` levels of both venues together (a third of the
    way into it), and one beyond every level (the books are too thin for it)."""
    sizes = sorted((parse_decimal(price), parse_decimal(amount)) for venue in FEES
                   for price, amount in truth[venue][venue_side])
    if venue_side == "bids":
        sizes.reverse()
    amounts = []
    for count in counts:
        before = sum(size for _, size in sizes[:count])
        amounts.append((before + sizes[count][1] // 3) / 10**12)
    amounts.append(sum(size for _, size in sizes) / 10**12 * 2)
    return amounts


@pytest.mark.parametrize("mode", list(MODES))
def test_every_quote_served_is_the_walk_over_the_true_books(simulator_factory, server_factory, mode) -> None:
    simulator = simulator_factory("--seed", "11", "--rate", "100")
    server = server_factory(simulator.urls, "--taker-fee", "binance=0.001,bitstamp=0.004", "--audit-interval", "0",
                            *MODES[mode])
    server.wait_serving(30)
    wait_until(lambda: symbol_states(server.target)["ETHBTC"][1], 30, "both venues in step",
               accept=lambda in_step: set(in_step) == set(FEES))
    requests = [orderbook_quotes_pb2.QuoteRequest(side=side, amount=amount, net_of_fees=net)
                for side in SIDES for amount in (0.001, 3.0, 40.0) for net in (False, True)]
    readers = [QuoteReader(server.target, request) for request in requests]
    try:
        wait_until(lambda: min(len(reader.updates) for reader in readers), 30, "quotes moving with the market",
                   accept=lambda fewest: fewest >= 2)
        simulator.control.pause()
        time.sleep(0.5)  # what was sent before the pause has arrived
        truth = simulator.control.truth()
        # Binance's book is deepened to every level after it comes in step: the large quotes settle once it is.
        for reader in readers:
            expected = expected_update(truth, reader.request)

            def latest(reader: QuoteReader = reader) -> bytes:
                return served(reader.updates[-1])

            wait_until(latest, 30, f"the quote of {reader.request} to settle", accept=expected.__eq__)
            assert reader.error is None

        # Fresh streams, the market still: the walk at once, then nothing (nothing changes).
        fresh_requests = [
            orderbook_quotes_pb2.QuoteRequest(side=side, amount=amount, net_of_fees=net)
            for side, venue_side in ((orderbook_quotes_pb2.BUY, "asks"), (orderbook_quotes_pb2.SELL, "bids"))
            for amount in amounts_within(truth, venue_side, (0, 9, 150)) for net in (False, True)]
        fresh = [QuoteReader(server.target, request) for request in fresh_requests]
        try:
            wait_until(lambda: min(len(reader.updates) for reader in fresh), 20, "a first update on every stream",
                       accept=lambda fewest: fewest >= 1)
            time.sleep(1.0)
            for reader in fresh:
                assert [served(update) for update in reader.updates] == [expected_update(truth, reader.request)], \
                    reader.request
            thin = [reader.updates[0] for reader in fresh[-2:]]  # the sell beyond every level, gross and net
            assert all(update.filled < update.amount for update in thin)
        finally:
            for reader in fresh:
                reader.close()
        assert simulator.control.truth() == truth  # still paused: nothing moved under the comparison
    finally:
        for reader in readers:
            reader.close()
    assert "Traceback" not in server.log()
