"""An edge's source, envelope by envelope (no Redis needed: :meth:`RedisSource.take` is what every read ends in).

What a client of the edge sees must be exactly the newest leader's newest summary of each symbol, whatever order
the channel and the stored values bring them in, and nothing from a deposed leader.
"""

from __future__ import annotations

import pytest

from orderbook.relay import envelope
from orderbook.relay.metrics import EdgeStats
from orderbook.relay.source import RedisSource
from orderbook.serving.symbols import SymbolBooks, SymbolState

URL = "redis://127.0.0.1:1/0"  # never connected to: take() needs no Redis


class Edge:
    def __init__(self) -> None:
        self.books = SymbolBooks((), 1)
        self.stats = EdgeStats()
        self.changes = 0
        self.source = RedisSource(URL, self.books, self.stats, on_change=self.changed)

    def changed(self) -> None:
        self.changes += 1

    def take(self, data: bytes, live: bool = True) -> None:
        self.source.take(data, live)


def state(symbol: str = "ETHBTC", in_step: tuple[str, ...] = ("binance",)) -> SymbolState:
    return SymbolState(symbol, ("binance", "bitstamp"), in_step)


def beat(epoch: int, sequence: int, symbols: tuple[str, ...] = ("ETHBTC", "BTCUSDT"), depth: int = 10) -> bytes:
    return envelope.heartbeat(epoch, sequence, "node", symbols, depth)


def upd(epoch: int, sequence: int, summary: bytes, symbol: str = "ETHBTC") -> bytes:
    return envelope.update(epoch, sequence, "node", state(symbol), summary)


@pytest.fixture
def edge() -> Edge:
    edge = Edge()
    edge.take(beat(1, 1))
    return edge


def test_the_heartbeat_teaches_the_symbols_and_depth_and_the_leader_is_heard() -> None:
    edge = Edge()
    assert edge.source.last_heard is None
    edge.take(beat(4, 1, ("BTCUSDT", "ETHBTC"), 25))
    assert (edge.books.symbols, edge.books.default, edge.books.depth) == (("BTCUSDT", "ETHBTC"), "BTCUSDT", 25)
    assert edge.stats.epoch == 4 and edge.stats.received["heartbeat"] == 1
    assert edge.source.last_heard is not None and sum(edge.stats.hop.counts) == 1


def test_updates_publish_their_summary_bytes_and_state(edge: Edge) -> None:
    edge.take(upd(1, 2, b"\x09first"))
    edge.take(upd(1, 3, b"\x09other", symbol="BTCUSDT"))
    assert edge.books.summary("ETHBTC") == b"\x09first" and edge.books.summary("BTCUSDT") == b"\x09other"
    assert edge.books.state("ETHBTC") == state()
    assert edge.stats.received["update"] == 2


def test_an_older_sequence_of_a_symbol_is_dropped(edge: Edge) -> None:
    edge.take(upd(1, 5, b"\x09newer"))
    edge.take(upd(1, 4, b"\x09older"))
    edge.take(upd(1, 5, b"\x09newer"))  # the same one again (read stored, then from the channel)
    assert edge.books.summary("ETHBTC") == b"\x09newer"
    assert edge.stats.dropped["old_sequence"] == 2
    edge.take(upd(1, 3, b"\x09other", symbol="BTCUSDT"))  # sequences are compared per symbol
    assert edge.books.summary("BTCUSDT") == b"\x09other"


def test_a_deposed_leaders_messages_are_dropped_once_a_newer_epoch_is_seen(edge: Edge) -> None:
    edge.take(upd(1, 50, b"\x09old leader"))
    edge.take(upd(2, 1, b"\x09new leader"))  # a lower sequence, but a newer epoch
    assert edge.stats.epoch == 2 and edge.stats.leader_changes == 1
    edge.take(upd(1, 51, b"\x09old leader, late"))
    edge.take(beat(1, 52))
    assert edge.books.summary("ETHBTC") == b"\x09new leader"
    assert edge.stats.dropped["old_epoch"] == 2


def test_a_summary_equal_to_the_one_served_is_not_published_again(edge: Edge) -> None:
    edge.take(upd(1, 2, b"\x09same"))
    published = edge.books.published_total
    edge.take(upd(2, 1, b"\x09same"))  # a new leader's first write repeats every symbol's
    assert edge.books.published_total == published
    edge.take(upd(2, 2, b"\x09changed"))
    assert edge.books.published_total == published + 1


def test_an_update_with_no_summary_yet_sets_only_the_state(edge: Edge) -> None:
    edge.take(upd(1, 2, b""))
    assert edge.books.summary("ETHBTC") is None and edge.books.state("ETHBTC") == state()


@pytest.mark.parametrize(("data", "reason"), [
    (b"not protobuf \xff\xff", "malformed"),
    (envelope.update(1, 9, "n", SymbolState("ETHBTC", ("binance",), ("kraken",)), b"\x09x"), "malformed"),
    (upd(1, 9, b"\x09x", symbol="XRPEUR"), "unknown_symbol"),
])
def test_what_cannot_be_applied_is_counted_and_changes_nothing(edge: Edge, data: bytes, reason: str) -> None:
    changes = edge.changes
    edge.take(data)
    assert edge.stats.dropped[reason] == 1
    assert edge.books.summary("ETHBTC") is None and edge.changes == changes


def test_stored_values_do_not_count_as_hearing_the_leader_or_as_hop_delay() -> None:
    edge = Edge()
    edge.take(beat(1, 1), live=False)
    edge.take(upd(1, 2, b"\x09stored"), live=False)
    assert edge.source.last_heard is None and sum(edge.stats.hop.counts) == 0
    assert edge.books.summary("ETHBTC") == b"\x09stored"
