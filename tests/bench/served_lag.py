"""How far behind its venue a served book is, told from outside the service: the simulator's probes against what a
gRPC client received, on one clock (CLOCK_MONOTONIC, system-wide).

A probe (:mod:`orderbook.simulator.probe`) sets a venue's best bid of the default symbol to a unique marker amount
and the simulator keeps the moment it sent it. A summary that shows marker ``J`` at price ``P`` bounds the lag of
the book it was built from, both ways, at the moment it was received, ``t``:

- at most ``t - sent(K)``, ``K`` the newest marker of that venue in it: the book has applied probe ``K``;
- at least ``t - sent(J')``, ``J'`` the first later probe of that venue seen (in any summary, before or after) at a
  price ``P' <= P``. Probe ``J'`` marked the best bid: at that moment level ``P`` held ``J'`` (``P' = P``) or was
  not in the book at all (``P' < P``), so marker ``J`` was gone by then, never to come back (a marker amount is
  unique). A book still showing ``J`` has not applied the event that removed it, sent at ``sent(J')`` or before.

The lower bound is the one that can catch a service serving a book further behind than it says; the upper bound
the one that tells when the lag was certainly still under a bound. Neither reads the service's own idea of its lag.
A venue's levels are in a summary only while the service counts it in step, so a summary that shows a venue's
marker was served with that venue counted in step.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc

from orderbook.proto import orderbook_pb2
from orderbook.simulator.probe import marker_key

BOOK_SUMMARY = "/orderbook.OrderbookAggregator/BookSummary"


@dataclass(frozen=True, slots=True)
class Marker:
    key: int
    exchange: str
    price: float


@dataclass(frozen=True, slots=True)
class Sighting:
    """One summary as received: when (``time.monotonic()``), and the markers it shows."""

    at: float
    markers: tuple[Marker, ...]

    @classmethod
    def of(cls, summary: orderbook_pb2.Summary, at: float) -> Sighting:
        return cls(at, tuple(Marker(key, level.exchange, level.price) for level in summary.bids
                             if (key := marker_key(level.amount)) is not None))


@dataclass(frozen=True, slots=True)
class LagBounds:
    """What one sighting proves about one venue's served book: ``low <= lag <= high`` at ``at`` (seconds).
    ``low`` is 0 when nothing proves more; ``high`` is None when no marker of the venue was in it."""

    at: float
    exchange: str
    low: float
    high: float | None


class Probes:
    """The probes the simulator sent, ``(key, exchange, sent_at)`` (``SimulatorControl.probes()``), and the price
    each was seen at in any summary."""

    def __init__(self, sent: Iterable[tuple[int, str, float]], sightings: Iterable[Sighting]) -> None:
        self.sent_at: dict[int, float] = {}
        self._keys: dict[str, list[int]] = {}
        for key, exchange, at in sent:
            self.sent_at[key] = at
            self._keys.setdefault(exchange, []).append(key)
        for keys in self._keys.values():
            keys.sort()
        self.price: dict[int, float] = {marker.key: marker.price for sighting in sightings
                                        for marker in sighting.markers}

    def gone_by(self, marker: Marker) -> float | None:
        """When ``marker`` had certainly left the venue's true book: the send time of the first later probe of the
        venue seen at a price at or below the marker's; None when no such probe was seen."""
        keys = self._keys.get(marker.exchange, [])
        for key in keys[bisect.bisect_right(keys, marker.key):]:
            price = self.price.get(key)
            if price is not None and price <= marker.price:
                return self.sent_at[key]
        return None


def lag_bounds(sightings: Sequence[Sighting], sent: Iterable[tuple[int, str, float]]) -> list[LagBounds]:
    """The bounds every sighting puts on each venue whose markers it shows (see the module's docstring)."""
    probes = Probes(sent, sightings)
    bounds = []
    for sighting in sightings:
        for exchange in sorted({marker.exchange for marker in sighting.markers}):
            markers = [marker for marker in sighting.markers
                       if marker.exchange == exchange and marker.key in probes.sent_at]
            if not markers:
                continue
            newest = max(marker.key for marker in markers)
            gone = [at for marker in markers if (at := probes.gone_by(marker)) is not None]
            low = max(0.0, sighting.at - min(gone)) if gone else 0.0
            bounds.append(LagBounds(sighting.at, exchange, low, sighting.at - probes.sent_at[newest]))
    return bounds


def last_surely_under(bounds: Iterable[LagBounds], exchange: str, bound: float, before: float) -> float | None:
    """The last moment before ``before`` at which ``exchange``'s served book was certainly less than ``bound``
    behind (its upper bound under it): the lag passed the bound after it, if at all."""
    times = [b.at for b in bounds if b.exchange == exchange and b.at < before and b.high is not None
             and b.high < bound]
    return max(times) if times else None


class SummaryWatcher:
    """Reads the default symbol's ``BookSummary`` on a thread of its own and keeps a :class:`Sighting` of every
    summary (``time.monotonic()`` taken as each arrives, before anything else is done with it)."""

    def __init__(self, target: str) -> None:
        self.sightings: list[Sighting] = []
        self.error: grpc.RpcError | None = None
        self._channel = grpc.insecure_channel(target)
        stream = self._channel.unary_stream(BOOK_SUMMARY, request_serializer=orderbook_pb2.Empty.SerializeToString,
                                            response_deserializer=orderbook_pb2.Summary.FromString)
        self._call = stream(orderbook_pb2.Empty(), wait_for_ready=True)
        self._thread = threading.Thread(target=self._read, name="summary-watcher", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for summary in self._call:
                self.sightings.append(Sighting.of(summary, time.monotonic()))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error

    def close(self) -> list[Sighting]:
        """Stop reading; every sighting, in the order received."""
        self._call.cancel()
        self._thread.join(5)
        self._channel.close()
        return list(self.sightings)
