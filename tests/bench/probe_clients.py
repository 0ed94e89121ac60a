"""A client process for the benchmarks: many BookSummary streams on a few channels, timing each probe's arrival.

    python -m tests.bench.probe_clients TARGET --streams 50 [--channels 1] [--start-timeout 30]
                                               [--book-symbols S1,S2,... [--book-depth 1]]

Runs on grpc.aio (one event loop, no thread per stream) in a plain, unpatched process, so a few of these can
hold a thousand streams without the client side becoming the bottleneck. Prints ``ready <started>`` once every
stream has received a summary (or the start timeout passed), then reads until stdin closes, then prints one JSON
line: per stream the monotonic time of its first summary and how many it received, and per probe key (a marker
amount, see :mod:`orderbook.simulator.probe`) the monotonic times at which streams first saw it.

With ``--book-symbols``, one ``OrderbookStreams.Book`` stream of each of those symbols follows the BookSummary
streams (``--book-depth`` levels a side), counted like them but not parsed: the probes mark the default symbol's
book alone. They are what makes a book process publish every symbol, which it holds back for a symbol nothing
reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import grpc

from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from orderbook.simulator.probe import marker_key

METHOD = "/orderbook.OrderbookAggregator/BookSummary"
BOOK_METHOD = "/orderbook.OrderbookStreams/Book"
_EMPTY = orderbook_pb2.Empty().SerializeToString()


class Streams:
    def __init__(self, count: int) -> None:
        self.first_at: list[float | None] = [None] * count
        self.received = [0] * count
        self.errors: list[str] = []
        self.markers: dict[int, list[float]] = {}
        self.started = asyncio.Event()
        self._waiting = count
        if not count:
            self.started.set()

    async def read(self, index: int, channel: grpc.aio.Channel, book: bytes | None = None) -> None:
        """Stream ``index``: BookSummary, timing the probes it sees; or, given ``book`` (a serialized
        ``BookRequest``), that Book stream, only counted."""
        method: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            METHOD if book is None else BOOK_METHOD)
        call = method(_EMPTY if book is None else book, wait_for_ready=True)
        seen: set[int] = set()
        markers = self.markers
        parse = orderbook_pb2.Summary.FromString
        try:
            async for payload in call:
                now = time.monotonic()
                if self.received[index] == 0:
                    self.first_at[index] = now
                    self._waiting -= 1
                    if not self._waiting:
                        self.started.set()
                self.received[index] += 1
                if book is not None:
                    continue
                for level in parse(payload).bids:
                    key = marker_key(level.amount)
                    if key is not None and key not in seen:
                        seen.add(key)
                        markers.setdefault(key, []).append(now)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.errors.append(f"{error.code().name}: {error.details()}")
        except asyncio.CancelledError:
            call.cancel()


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    # A local subchannel pool gives each channel its own connection (channels to one target share one otherwise),
    # as separate client programs would have: the kernel spreads connections, not streams, over serving processes.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(args.target, options=options) for _ in range(max(1, args.channels))]
    books = [orderbook_streams_pb2.BookRequest(symbol=symbol, depth=args.book_depth).SerializeToString()
             for symbol in args.book_symbols]
    requests: list[bytes | None] = [*[None] * args.streams, *books]
    streams = Streams(len(requests))
    tasks = [asyncio.create_task(streams.read(i, channels[i % len(channels)], request))
             for i, request in enumerate(requests)]
    try:
        await asyncio.wait_for(streams.started.wait(), args.start_timeout)
    except TimeoutError:
        pass
    print(f"ready {sum(1 for t in streams.first_at if t is not None)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return {"first_at": streams.first_at, "received": streams.received, "errors": streams.errors[:20],
            "error_count": len(streams.errors), "markers": streams.markers}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--channels", type=int, default=1,
                        help="streams are spread over this many channels, each its own connection")
    parser.add_argument("--start-timeout", type=float, default=30.0)
    parser.add_argument("--book-symbols", type=lambda text: [s for s in text.split(",") if s], default=[],
                        help="also a Book stream of each of these symbols (comma-separated), after the others")
    parser.add_argument("--book-depth", type=int, default=0, help="levels a side of the Book streams (0: --depth)")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
