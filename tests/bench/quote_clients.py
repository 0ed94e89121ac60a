"""A client process for the benchmarks: many ``OrderbookQuotes.Quote`` streams on a few channels.

    python -m tests.bench.quote_clients TARGET --streams 100 --requests 20 [--channels 5] [--start-timeout 30]

The streams cycle through ``--requests`` distinct requests (amounts of the default symbol, both sides, gross and
net of fees), so that several streams share each quote as clients pricing the same sizes would. On grpc.aio in a
plain process, as :mod:`tests.bench.probe_clients`. Prints ``ready <started>`` once every stream has its first
update (or the start timeout passed), reads until stdin closes, then prints one JSON line: the updates each
stream received, and the errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import grpc

from orderbook.proto import orderbook_quotes_pb2

METHOD = "/orderbook.OrderbookQuotes/Quote"
AMOUNTS = (0.01, 0.5, 2.0, 10.0, 50.0)
"""Base-asset amounts asked, from inside the best level to tens of levels of the simulator's books."""


def requests(count: int) -> list[bytes]:
    """``count`` distinct requests, serialized: each amount, each side, gross then net."""
    every = [orderbook_quotes_pb2.QuoteRequest(side=side, amount=amount * (1 + round_ / 1000), net_of_fees=net)
             for round_ in range(count) for amount in AMOUNTS
             for side in (orderbook_quotes_pb2.BUY, orderbook_quotes_pb2.SELL) for net in (False, True)]
    return [request.SerializeToString() for request in every[:count]]


class Streams:
    def __init__(self, count: int) -> None:
        self.received = [0] * count
        self.errors: list[str] = []
        self.started = asyncio.Event()
        self._waiting = count
        if not count:
            self.started.set()

    async def read(self, index: int, channel: grpc.aio.Channel, request: bytes) -> None:
        method: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(METHOD)
        call = method(request, wait_for_ready=True)
        try:
            async for _ in call:
                if self.received[index] == 0:
                    self._waiting -= 1
                    if not self._waiting:
                        self.started.set()
                self.received[index] += 1
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.errors.append(f"{error.code().name}: {error.details()}")
        except asyncio.CancelledError:
            call.cancel()


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    options = [("grpc.use_local_subchannel_pool", 1)]  # each channel its own connection (probe_clients says why)
    channels = [grpc.aio.insecure_channel(args.target, options=options) for _ in range(max(1, args.channels))]
    asked = requests(args.requests)
    streams = Streams(args.streams)
    tasks = [asyncio.create_task(streams.read(i, channels[i % len(channels)], asked[i % len(asked)]))
             for i in range(args.streams)]
    try:
        await asyncio.wait_for(streams.started.wait(), args.start_timeout)
    except TimeoutError:
        pass
    print(f"ready {sum(1 for received in streams.received if received)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return {"received": streams.received, "errors": streams.errors[:20], "error_count": len(streams.errors)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--requests", type=int, default=20, help="distinct requests the streams cycle through")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--start-timeout", type=float, default=30.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
