"""A server that stops ends every open stream with UNAVAILABLE, never with a normal end (status OK), which a client
would take as the end of the book: a book node on SIGTERM, its serving processes (``--serve-processes``) when it
stops or dies, and an edge on SIGTERM. Real processes on loopback; the streams are raw gRPC calls, each on its
own connection, so that the kernel spreads them over the serving processes."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from orderbook.serving.symbols import SHUTTING_DOWN
from orderbook.simulator.process import SimulatorProcess
from tests.support.cluster import Cluster, health
from tests.support.service import BOOK_METHOD, METHOD, LoggedServer, ServerProcess
from tests.support.waiting import wait_until

SYMBOLS = "ETHBTC,BTCUSDT"
WORKER_MODULE = "orderbook.serving.worker"
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # channels to one target share a connection otherwise


class Stream:
    """One BookSummary stream (``request`` None) or Book stream, on a connection of its own, read on a thread until
    the server ends it: how it ended."""

    def __init__(self, target: str, request: orderbook_streams_pb2.BookRequest | None = None) -> None:
        self.request = request
        self.received = 0
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None
        self._channel = grpc.insecure_channel(target, options=OWN_CONNECTION)
        if request is None:
            method: grpc.UnaryStreamMultiCallable[orderbook_pb2.Empty, bytes] = self._channel.unary_stream(
                METHOD, orderbook_pb2.Empty.SerializeToString)
            self._call = method(orderbook_pb2.Empty())
        else:
            book: grpc.UnaryStreamMultiCallable[orderbook_streams_pb2.BookRequest, bytes] = self._channel.unary_stream(
                BOOK_METHOD, orderbook_streams_pb2.BookRequest.SerializeToString)
            self._call = book(request)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for _ in self._call:
                self.received += 1
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            self.code, self.details = error.code(), error.details()

    def ended(self, timeout: float) -> tuple[grpc.StatusCode | None, str | None]:
        """``(code, details)`` once the server has ended the stream (None, None if it has not within ``timeout``)."""
        self._thread.join(timeout)
        return self.code, self.details

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(5)
        self._channel.close()


@pytest.fixture
def streams() -> Iterator[Callable[[str], list[Stream]]]:
    opened: list[Stream] = []

    def open_every_kind(target: str) -> list[Stream]:
        """BookSummary, Book of the default symbol (at the full depth and at 3) and Book naming each symbol, twice
        each; once each has had its first summary."""
        requests = [None, orderbook_streams_pb2.BookRequest(), orderbook_streams_pb2.BookRequest(depth=3),
                    *(orderbook_streams_pb2.BookRequest(symbol=symbol) for symbol in SYMBOLS.split(","))]
        kinds = [Stream(target, request) for request in requests * 2]
        opened.extend(kinds)
        wait_until(lambda: sum(stream.received > 0 for stream in kinds), 20, "a summary on every stream",
                   accept=lambda started: started == len(kinds))
        return kinds

    yield open_every_kind
    for stream in opened:
        stream.close()


def assert_ended_unavailable(opened: list[Stream], timeout: float = 10) -> None:
    ends = [stream.ended(timeout) for stream in opened]
    assert ends == [(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)] * len(opened), [
        (stream.request, end) for stream, end in zip(opened, ends)]


def stop_with(process: LoggedServer, signum: signal.Signals) -> int:
    process.proc.send_signal(signum)
    return process.proc.wait(10)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda signum: signum.name)
def test_a_book_node_that_stops_ends_every_stream_unavailable(
        simulator_factory: Callable[..., SimulatorProcess], server_factory: Callable[..., ServerProcess],
        streams: Callable[[str], list[Stream]], signum: signal.Signals) -> None:
    simulator = simulator_factory("--seed", "21", "--rate", "20", "--symbol", SYMBOLS)
    server = server_factory(simulator.urls, "--symbol", SYMBOLS)
    server.wait_serving()
    opened = streams(server.target)
    assert stop_with(server, signum) == 0
    assert_ended_unavailable(opened)
    assert "Traceback" not in server.log()


# -- serving processes ---------------------------------------------------------------------------------------------


def _serving_process(pid: int) -> int | None:
    """The parent of ``pid`` if it is a serving process that runs (not a zombie), else None (Linux: /proc)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state, parent = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[:2]
    except OSError:
        return None  # gone
    return int(parent) if WORKER_MODULE.encode() in argv and state != "Z" else None


def worker_pids(parent: int) -> set[int]:
    """The serving processes ``parent`` started that run now."""
    return {int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _serving_process(int(entry.name)) == parent}


def wait_gone(pids: set[int], timeout: float = 10) -> None:
    wait_until(lambda: {pid for pid in pids if _serving_process(pid) is not None}, timeout,
               "the serving processes gone", accept=lambda left: not left)


@pytest.fixture
def book_process(simulator_factory: Callable[..., SimulatorProcess],
                 server_factory: Callable[..., ServerProcess]) -> Iterator[tuple[ServerProcess, set[int]]]:
    """A book node serving from 2 processes, SERVING, and their pids; any of them left is killed at the end."""
    simulator = simulator_factory("--seed", "22", "--rate", "20", "--symbol", SYMBOLS)
    server = server_factory(simulator.urls, "--symbol", SYMBOLS, "--serve-processes", "2")
    server.wait_serving()
    workers = wait_until(lambda: worker_pids(server.proc.pid), 10, "2 serving processes",
                         accept=lambda pids: len(pids) == 2)
    yield server, workers
    for pid in workers:
        if _serving_process(pid) is not None:  # still one of them, not a pid used again
            os.kill(pid, signal.SIGKILL)


def test_serving_processes_end_every_stream_unavailable_when_the_book_process_stops(
        book_process: tuple[ServerProcess, set[int]], streams: Callable[[str], list[Stream]]) -> None:
    server, workers = book_process
    opened = streams(server.target)
    assert stop_with(server, signal.SIGTERM) == 0
    assert_ended_unavailable(opened)
    wait_gone(workers)
    assert "Traceback" not in server.log()


def test_serving_processes_end_every_stream_unavailable_when_the_book_process_dies(
        book_process: tuple[ServerProcess, set[int]], streams: Callable[[str], list[Stream]]) -> None:
    server, workers = book_process
    opened = streams(server.target)
    stop_with(server, signal.SIGKILL)  # no goodbye: the serving processes see their links close
    assert_ended_unavailable(opened)
    wait_gone(workers)


# -- an edge -------------------------------------------------------------------------------------------------------


def test_an_edge_that_stops_ends_every_stream_unavailable(
        tmp_path: Path, simulator_factory: Callable[..., SimulatorProcess],
        streams: Callable[[str], list[Stream]]) -> None:
    cluster = Cluster(tmp_path, simulator_factory("--seed", "23", "--rate", "20", "--symbol", SYMBOLS))
    try:
        cluster.start_node("--symbol", SYMBOLS).wait_serving()
        edge = cluster.start_edge()
        wait_until(lambda: health(edge.target) == "SERVING", 15, "the edge SERVING")
        opened = streams(edge.target)
        assert stop_with(edge, signal.SIGTERM) == 0
        assert_ended_unavailable(opened)
        assert "Traceback" not in edge.log()
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
