"""Client-side tools for the resilience tests: many BookSummary streams on one channel, and /metrics scrapes.

Streams in one group share one channel (one HTTP/2 connection, one set of grpc threads), so a few hundred of
them are cheap for the test process. Readers take the raw bytes (no deserialization): counting and timing are
all these tests need from the bulk clients, and it keeps the test process from becoming the bottleneck.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from orderbook.proto import orderbook_pb2
from tests.metrics_scrape import Samples, scrape  # noqa: F401 - the tests import them from here

METHOD = "/orderbook.OrderbookAggregator/BookSummary"

# A client that never reads should push back on the server as soon as HTTP/2 flow control allows: without
# BDP probing the receive window stays at its initial 64 KiB instead of growing to megabytes.
NO_WINDOW_GROWTH = (("grpc.http2.bdp_probe", 0),)


@dataclass
class StreamStats:
    """What one stream saw: arrival times (monotonic) of each summary, and how it ended."""

    arrivals: list[float] = field(default_factory=list)
    last: bytes | None = None
    """The latest serialized Summary."""
    ended_at: float | None = None
    code: grpc.StatusCode | None = None
    """OK for a clean end of stream, the RpcError's code otherwise; None while open."""


class StreamGroup:
    """``count`` BookSummary streams over one channel, each read on its own thread.

    ``delay`` seconds of sleep after each summary makes a slow reader; ``read=False`` opens the streams and never
    reads them at all (the server must hold back, not buffer without bound).
    """

    def __init__(self, target: str, count: int, *, delay: float = 0.0, read: bool = True,
                 options: Sequence[tuple[str, int]] = ()) -> None:
        self._channel = grpc.insecure_channel(target, options=list(options))
        method: grpc.UnaryStreamMultiCallable[orderbook_pb2.Empty, bytes] = self._channel.unary_stream(
            METHOD, request_serializer=orderbook_pb2.Empty.SerializeToString)
        self._delay = delay
        self._stopping = threading.Event()
        self.stats = [StreamStats() for _ in range(count)]
        self._calls = [method(orderbook_pb2.Empty()) for _ in range(count)]
        self._threads = [
            threading.Thread(target=self._read, args=(call, stats), daemon=True)
            for call, stats in zip(self._calls, self.stats, strict=True)
        ] if read else []
        for thread in self._threads:
            thread.start()

    def _read(self, call: grpc.Call, stats: StreamStats) -> None:
        try:
            for payload in call:  # type: ignore[attr-defined]
                stats.arrivals.append(time.monotonic())
                stats.last = payload
                if self._delay and self._stopping.wait(self._delay):
                    break
            stats.code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            stats.code = error.code()
        finally:
            stats.ended_at = time.monotonic()

    def started(self) -> int:
        """Streams that have received at least one summary."""
        return sum(1 for stats in self.stats if stats.arrivals)

    def received(self) -> int:
        return sum(len(stats.arrivals) for stats in self.stats)

    def ended(self) -> int:
        return sum(1 for stats in self.stats if stats.ended_at is not None)

    def join(self, timeout: float) -> bool:
        """Wait for every reader to finish (the server ended the streams); True if they all did in time."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return all(not thread.is_alive() for thread in self._threads)

    def close(self) -> None:
        self._stopping.set()
        for call in self._calls:
            call.cancel()
        self.join(5.0)
        self._channel.close()
