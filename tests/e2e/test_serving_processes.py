"""``--serve-processes 2``: the book process feeding two gRPC serving processes that share the port.

The serving processes are found through /proc (Linux): by their command line, which names the worker module and
the address they serve. Every one a test sees is killed at the end if it is still there, whatever the outcome.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import grpc
import pytest

from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from orderbook.simulator.process import SimulatorProcess
from tests.metrics_scrape import Samples, scrape
from tests.support.service import RUN_SERVER, Book, BookReader, ServerProcess, wait_until_matches_truth
from tests.support.waiting import wait_until

WORKER_MODULE = "orderbook.serving.worker"
BOTH = {"binance", "bitstamp"}


# -- serving processes, from /proc ---------------------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def serving_pids(address: str, parent: int | None = None) -> set[int]:
    """Live serving processes started for ``address`` (``--grpc-addr`` as they got it), of ``parent`` if given."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = _cmdline(pid)
        if (WORKER_MODULE in argv and ("--grpc-addr", address) in zip(argv, argv[1:]) and _alive(pid)
                and (parent is None or _parent(pid) == parent)):
            found.add(pid)
    return found


def served_connections(port: int, pid: int | None = None) -> int:
    """Established TCP connections to ``port``, only those whose socket process ``pid`` holds if given."""
    inodes = None
    if pid is not None:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "01" and (inodes is None or fields[9] in inodes):  # ESTABLISHED
                count += 1
    return count


def wait_metric(server: ServerProcess, check: Callable[[Samples], bool], timeout: float, what: str) -> Samples:
    """Scrape until ``check`` holds (the serving processes report every second)."""
    return wait_until(lambda: scrape(server.metrics_port), timeout, f"/metrics to show {what}", accept=check,
                      interval=0.2)


def port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def readers_until_served_by(pid: int, server: ServerProcess,
                            reader_factory: Callable[[str], BookReader]) -> list[BookReader]:
    """Readers opened one after the other until the kernel gives one's connection to serving process ``pid``;
    that one, the last, is left open. grpc shares one connection among a process's channels to the same
    target, so each reader is closed, and its connection gone, before the next one is opened."""
    readers: list[BookReader] = []
    while True:
        wait_until(lambda: not served_connections(server.grpc_port), 5, "no connection to the port left")
        readers.append(reader := reader_factory(server.target))
        reader.wait_for(lambda book: True, 10, "at all")
        if served_connections(server.grpc_port, pid):
            return readers
        assert len(readers) < 12, f"12 readers in a row were not served by process {pid}"
        reader.close()


class Fleet:
    """Servers serving from 2 processes each, and every serving process a test has seen, so none outlives it."""

    def __init__(self, simulator_factory: Callable[..., SimulatorProcess],
                 server_factory: Callable[..., ServerProcess]) -> None:
        self._simulator_factory, self._server_factory = simulator_factory, server_factory
        self.servers: list[ServerProcess] = []
        self.seen: set[int] = set()

    def start(self, *simulator_args: str, server_args: tuple[str, ...] = (),
              wait: bool = True) -> tuple[SimulatorProcess, ServerProcess]:
        """A simulator and a server for it; with ``wait``, SERVING and its 2 serving processes up."""
        simulator = self._simulator_factory(*simulator_args)
        server = self._server_factory(simulator.urls, "--serve-processes", "2", *server_args)
        self.servers.append(server)
        if wait:
            server.wait_serving()
            self.workers(server)
        return simulator, server

    def workers(self, server: ServerProcess, count: int = 2, timeout: float = 10) -> set[int]:
        """The server's serving processes, once there are ``count`` of them."""
        pids: set[int] = set()

        def counted() -> bool:
            nonlocal pids
            pids = serving_pids(server.target, parent=server.proc.pid)
            self.seen |= pids
            return len(pids) == count

        wait_until(counted, timeout, f"{count} serving processes of pid {server.proc.pid}")
        return pids

    def clean_up(self) -> None:
        for server in self.servers:
            if server.proc.poll() is None:
                self.seen |= serving_pids(server.target, parent=server.proc.pid)
            server.terminate()
        for pid in self.seen:
            if _alive(pid) and WORKER_MODULE in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def fleet(simulator_factory, server_factory) -> Iterator[Fleet]:
    servers = Fleet(simulator_factory, server_factory)
    yield servers
    servers.clean_up()


def truth_of(simulator: SimulatorProcess) -> Callable[[], Book]:
    return lambda: Book.from_truth(simulator.control.truth(10)["merged"])


# -- the tests -----------------------------------------------------------------------------------------------


def test_two_serving_processes_serve_the_true_book_and_report_their_streams(fleet, reader_factory):
    simulator, server = fleet.start("--seed", "11", "--rate", "200")
    first = reader_factory(server.target)
    first.wait_for(lambda book: book.exchanges() == BOTH and len(book.bids) == 10, 10, "with both exchanges")
    received = first.received
    first.wait_for(lambda book: first.received > received + 50, 15, "after more traffic")
    simulator.control.pause()
    served = wait_until_matches_truth(first, truth_of(simulator), 5)
    assert len(served.bids) == len(served.asks) == 10

    samples = wait_metric(server, lambda s: s("orderbook_summaries_sent_total") == first.received, 5,
                          f"the {first.received} summaries the reader got as sent")
    assert samples("orderbook_serving_processes") == 2
    assert samples("orderbook_serving_process_restarts_total") == 0
    assert samples("orderbook_grpc_open_streams") == 1
    assert samples("orderbook_publish_to_send_seconds_count") == first.received
    assert samples("orderbook_summaries_published_total") >= first.received

    # The other process's figures count too: a reader served by it, after this one.
    wait_until(lambda: served_connections(server.grpc_port) == 1, 5, "the reader's the only connection")
    (other,) = {pid for pid in fleet.workers(server) if not served_connections(server.grpc_port, pid)}
    first.close()
    readers = readers_until_served_by(other, server, reader_factory)
    assert wait_until_matches_truth(readers[-1], truth_of(simulator), 5) == served
    everything = first.received + sum(reader.received for reader in readers)
    samples = wait_metric(server, lambda s: s("orderbook_summaries_sent_total") == everything
                          and s("orderbook_grpc_open_streams") == 1, 5, f"{everything} sent and 1 stream open")
    assert samples("orderbook_publish_to_send_seconds_count") == everything

    readers[-1].close()
    wait_metric(server, lambda s: s("orderbook_grpc_open_streams") == 0, 5, "no stream open")
    assert server.terminate() == 0
    assert "Traceback" not in server.log()


def end_one_and_wait_for_its_restart(fleet: Fleet, server: ServerProcess, how: signal.Signals) -> tuple[int, set[int]]:
    """Signal the lowest-pid serving process; once restarted, return its pid and the pids from before."""
    before = fleet.workers(server)
    victim = min(before)
    os.kill(victim, how)
    wait_metric(server, lambda s: s("orderbook_serving_process_restarts_total") == 1
                and s("orderbook_serving_processes") == 2, 15, "one restart and 2 processes again")
    return victim, before


def test_a_killed_serving_process_is_restarted_and_serves_the_true_book(fleet, reader_factory):
    simulator, server = fleet.start("--seed", "12", "--rate", "100")
    victim, before = end_one_and_wait_for_its_restart(fleet, server, signal.SIGKILL)
    after = fleet.workers(server)
    (restarted,) = after - before
    assert after - {restarted} == before - {victim}
    assert re.search(rf"serving process \d \(pid {victim}\) ended with -9", server.log())

    reader = readers_until_served_by(restarted, server, reader_factory)[-1]
    reader.wait_for(lambda book: book.exchanges() == BOTH, 10, "with both exchanges")
    simulator.control.pause()
    wait_until_matches_truth(reader, truth_of(simulator), 5)
    samples = wait_metric(server, lambda s: s("orderbook_grpc_open_streams") == 1, 5, "the reader's stream")
    assert samples("orderbook_serving_process_restarts_total") == 1  # nothing else died meanwhile
    assert samples("orderbook_serving_processes") == 2


def test_a_serving_process_stopped_with_sigterm_ends_cleanly_and_is_restarted(fleet):
    _, server = fleet.start("--seed", "16", "--rate", "50")
    victim, before = end_one_and_wait_for_its_restart(fleet, server, signal.SIGTERM)
    assert len(fleet.workers(server) - before) == 1
    log = server.log()
    assert re.search(rf"serving process \d \(pid {victim}\) ended with 0;", log), log[-3000:]
    assert "link to the book process broken" not in log
    assert "Traceback" not in log


def test_when_the_book_process_dies_its_serving_processes_exit_and_the_port_closes(fleet, reader_factory):
    _, server = fleet.start("--seed", "13", "--rate", "50")
    workers = fleet.workers(server)
    reader_factory(server.target).wait_for(lambda book: True, 10, "at all")

    server.proc.kill()
    server.proc.wait(5)
    wait_until(lambda: not any(map(_alive, workers)), 5, "every serving process gone")
    assert not serving_pids(server.target)
    assert not port_accepts(server.grpc_port)  # nothing stale served, and no one left holding the port


def test_sigterm_stops_the_server_after_its_serving_processes(fleet, reader_factory):
    _, server = fleet.start("--seed", "14", "--rate", "50")
    workers = fleet.workers(server)
    reader_factory(server.target).wait_for(lambda book: True, 10, "at all")
    assert server.terminate() == 0
    assert not any(map(_alive, workers))  # waited for by the server, not left to the init process
    assert not serving_pids(server.target)
    log = server.log()
    assert "Traceback" not in log
    stopped = log.index("gRPC serving processes on")
    assert log.count(f"gRPC server on port {server.grpc_port} stopped", 0, stopped) == 2  # each one's, before


@pytest.mark.usefixtures("starts_processes")
def test_a_port_in_use_is_one_clear_error_and_no_serving_process_is_left():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run(
            [str(RUN_SERVER), "--metrics-addr", "off", "--grpc-addr", address, "--serve-processes", "2"],
            capture_output=True, text=True, timeout=20,
        )
        assert not serving_pids(address)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("run-server: error:")]
    assert errors == [f"run-server: error: --grpc-addr {address}: address already in use"]
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("starts_processes")
def test_a_rejected_tls_certificate_is_one_clear_error_as_with_one_process(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = subprocess.run(
        [str(RUN_SERVER), "--metrics-addr", "off", "--grpc-addr", "127.0.0.1:0", "--serve-processes", "2",
         "--tls-cert", str(junk), "--tls-key", str(junk)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("run-server: error:")]
    assert len(errors) == 1, result.stderr
    rejected = re.escape(f"the TLS certificate {junk} or key {junk} was rejected (not PEM, or not a pair)")
    match = re.fullmatch(rf"run-server: error: cannot listen on (127\.0\.0\.1:\d+): {rejected}", errors[0])
    assert match, errors  # not "address already in use": the port is ours
    address = match[1]
    assert "Traceback" not in result.stderr
    assert not serving_pids(address)


def first_book(channel: grpc.Channel, symbol: str, depth: int) -> Book:
    """The book a new ``Book`` stream gets first: the one being served now."""
    call = channel.unary_stream("/orderbook.OrderbookStreams/Book",
                                orderbook_streams_pb2.BookRequest.SerializeToString,
                                orderbook_pb2.Summary.FromString)(
        orderbook_streams_pb2.BookRequest(symbol=symbol, depth=depth), timeout=10)
    try:
        return Book.from_summary(next(call))
    finally:
        call.cancel()


def test_serving_processes_serve_book_at_a_depth_and_symbols_with_the_venues_in_step(fleet):
    simulator, server = fleet.start("--seed", "17", "--rate", "100")
    with grpc.insecure_channel(server.target) as channel:
        list_symbols = channel.unary_unary("/orderbook.OrderbookStreams/Symbols", orderbook_pb2.Empty.SerializeToString,
                                           orderbook_streams_pb2.SymbolList.FromString)

        def states() -> list[tuple[str, list[str], list[str]]]:
            listed = list_symbols(orderbook_pb2.Empty(), timeout=5).symbols
            return [(state.symbol, list(state.exchanges), list(state.exchanges_in_step)) for state in listed]

        both = [("ETHBTC", ["binance", "bitstamp"], ["binance", "bitstamp"])]
        wait_until(states, 10, "Symbols to list both venues in step", accept=lambda listed: listed == both)
        simulator.control.pause()
        truth = Book.from_truth(simulator.control.truth(3)["merged"])
        assert len(truth.bids) == len(truth.asks) == 3
        for symbol in ("", "ETHBTC"):  # the default symbol, by its empty name and by its own
            wait_until(partial(first_book, channel, symbol, 3), 5, f"Book({symbol!r}, 3) to be the true top 3",
                       accept=lambda book: book == truth)
        with pytest.raises(grpc.RpcError) as unknown:
            first_book(channel, "BTCUSDT", 3)
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as too_deep:
            first_book(channel, "ETHBTC", 11)
        assert too_deep.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert server.terminate() == 0
    assert "Traceback" not in server.log()


def test_port_0_is_reserved_once_and_served_by_both_processes(fleet, reader_factory):
    simulator, server = fleet.start("--seed", "15", "--rate", "50", wait=False)  # ServerProcess asks for port 0
    port = server.grpc_port  # from its ready file, written once both serving processes listen
    assert port != 0
    assert f"gRPC served by 2 processes on 127.0.0.1:{port} " in server.log()
    workers = fleet.workers(server)
    assert len(re.findall(rf"gRPC serving \S+ on 127\.0\.0\.1 port {port} ", server.log())) == 2

    server.wait_serving()
    reader = reader_factory(server.target)
    reader.wait_for(lambda book: book.exchanges() == BOTH, 10, "with both exchanges")
    simulator.control.pause()
    wait_until_matches_truth(reader, truth_of(simulator), 5)
    assert sum(served_connections(port, pid) for pid in workers) >= 1
    assert server.terminate() == 0
