"""Real processes on loopback: the service (bin/run-server) and gRPC readers that keep what they receive."""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from tests.support.ports import ReadyFilePorts, server_port_args
from tests.support.processes import stop_process, with_default_signals

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_SERVER = REPO_ROOT / "bin" / "run-server"
METHOD = "/orderbook.OrderbookAggregator/BookSummary"
BOOK_METHOD = "/orderbook.OrderbookStreams/Book"
SYMBOLS_METHOD = "/orderbook.OrderbookStreams/Symbols"


class LoggedServer(ReadyFilePorts):
    """A server started on ports it picks itself (``--ready-file``, :mod:`tests.support.ports`): :attr:`grpc_port`,
    :attr:`metrics_port` and :attr:`target` wait for the file on first use. Its log goes to a file the test can
    read. ``args`` come after the port arguments, so an ``--metrics-addr off`` among them wins."""

    def __init__(self, program: Path, args: Sequence[str], log_path: Path) -> None:
        self.log_path = log_path
        self.ready_file = log_path.with_name(log_path.name + ".ports.json")
        self.ready_file.unlink(missing_ok=True)
        with log_path.open("wb") as log:
            command = with_default_signals([str(program), *server_port_args(self.ready_file), *args])
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())

    def ready_log(self) -> str:
        return self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 10.0) -> int:
        return stop_process(self.proc, timeout)


class ServerProcess(LoggedServer):
    """``bin/run-server`` pointed at a simulator (``urls``, or ``None`` with ``--demo``), ``extra`` arguments
    first."""

    def __init__(self, urls: dict[str, str] | None, log_path: Path, *extra: str) -> None:
        args = list(extra)
        if urls is not None:
            args += ["--binance-ws-url", urls["binance_ws"], "--binance-rest-url", urls["binance_rest"],
                     "--bitstamp-ws-url", urls["bitstamp_ws"], "--bitstamp-rest-url", urls["bitstamp_rest"]]
        super().__init__(RUN_SERVER, args, log_path)

    def wait_serving(self, timeout: float = 20.0) -> None:
        """Until grpc.health.v1 says SERVING (at least one exchange in step)."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"server exited early:\n{self.log()[-3000:]}"
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"server not SERVING within {timeout} s:\n{self.log()[-3000:]}")


@dataclass(frozen=True)
class Row:
    exchange: str
    price: float
    amount: float


@dataclass(frozen=True)
class Book:
    spread: float | None
    bids: tuple[Row, ...]
    asks: tuple[Row, ...]

    @classmethod
    def from_summary(cls, summary: orderbook_pb2.Summary) -> Book:
        def rows(levels) -> tuple[Row, ...]:
            return tuple(Row(level.exchange, level.price, level.amount) for level in levels)

        return cls(None if math.isnan(summary.spread) else summary.spread, rows(summary.bids), rows(summary.asks))

    @classmethod
    def from_truth(cls, merged: dict) -> Book:
        """The simulator's merged top-N (decimal strings), as the floats a client must receive."""

        def rows(levels) -> tuple[Row, ...]:
            return tuple(Row(lv["exchange"], float(Decimal(lv["price"])), float(Decimal(lv["amount"])))
                         for lv in levels)

        spread = merged["spread"]
        return cls(None if spread is None else float(Decimal(spread)), rows(merged["bids"]), rows(merged["asks"]))

    def exchanges(self) -> set[str]:
        return {row.exchange for row in (*self.bids, *self.asks)}


class SummaryStream(Protocol):
    """A streaming call's summaries, which it can cancel (grpc's call, or a wrapper of it)."""

    def __iter__(self) -> Iterator[orderbook_pb2.Summary]: ...

    def cancel(self) -> bool: ...


@dataclass
class BookReader:
    """Reads one stream on a thread, keeping the latest book and a few facts about all of them: BookSummary, or
    with ``symbol`` (and ``depth``) set, OrderbookStreams.Book."""

    target: str
    symbol: str | None = None
    depth: int = 0
    latest: Book | None = None
    received: int = 0
    min_spread: float = math.inf
    error: grpc.RpcError | None = None
    arrivals: list[float] = field(default_factory=list)
    """time.monotonic() of every summary received."""
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._channel = grpc.insecure_channel(self.target)
        if self.symbol is None:
            stream = self._channel.unary_stream(METHOD, request_serializer=orderbook_pb2.Empty.SerializeToString,
                                                response_deserializer=orderbook_pb2.Summary.FromString)
            self._call: SummaryStream = stream(orderbook_pb2.Empty())
        else:
            stream = self._channel.unary_stream(
                BOOK_METHOD, request_serializer=orderbook_streams_pb2.BookRequest.SerializeToString,
                response_deserializer=orderbook_pb2.Summary.FromString)
            self._call = stream(orderbook_streams_pb2.BookRequest(symbol=self.symbol, depth=self.depth))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for summary in self._call:
                book = Book.from_summary(summary)
                with self._changed:
                    self.latest = book
                    self.received += 1
                    self.arrivals.append(time.monotonic())
                    if book.spread is not None:
                        self.min_spread = min(self.min_spread, book.spread)
                    self._changed.notify_all()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        finally:
            with self._changed:
                self._changed.notify_all()

    def wait_for(self, predicate: Callable[..., bool], timeout: float, what: str) -> Book:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.latest is None or not predicate(self.latest):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no summary {what} within {timeout} s; latest: {self.latest}"
                assert self.error is None, f"stream failed: {self.error}"
                self._changed.wait(remaining)
            return self.latest

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time without a summary between ``start`` and ``end`` (time.monotonic())."""
        with self._changed:
            times = [start, *(t for t in self.arrivals if start < t < end), end]
        return max(b - a for a, b in zip(times, times[1:]))

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)
        self._channel.close()


def wait_until_matches_truth(reader: BookReader, truth: Callable[..., Book], timeout: float) -> Book:
    """Until the reader's latest book equals the simulator's truth (the simulator should be paused)."""
    deadline = time.monotonic() + timeout
    expected = truth()
    while time.monotonic() < deadline:
        expected = truth()
        if reader.latest == expected:
            return expected
        time.sleep(0.05)
    raise AssertionError(f"served book never matched the truth.\nserved:   {reader.latest}\nexpected: {expected}")


def symbol_states(target: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """OrderbookStreams.Symbols: symbol -> (its venues, those in step), in the server's order."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(SYMBOLS_METHOD, request_serializer=orderbook_pb2.Empty.SerializeToString,
                                   response_deserializer=orderbook_streams_pb2.SymbolList.FromString)
        answer = call(orderbook_pb2.Empty(), timeout=5)
    return {state.symbol: (tuple(state.exchanges), tuple(state.exchanges_in_step)) for state in answer.symbols}
