"""Serving from several processes (``--serve-processes N``), fed by this one, the book process.

One process completes a bounded number of stream sends a second through grpcio's sync server under gevent (about
25,000 a second to 1,000 streams on this project's 2-core machine with the ready-first completion polling of
:mod:`orderbook.gevent_polling`; README, Performance), and the feeds share its core. Here
the book process keeps the books and publishes as before, and N serving processes
(:mod:`orderbook.serving.worker`) bind the same gRPC address with SO_REUSEPORT; the kernel spreads incoming
connections over them. Each one is fed over its own socketpair by a greenlet that follows this process's
:class:`~orderbook.serving.symbols.ServedSymbols`: every symbol's full summary and venues, latest value only, so a
slow serving process skips summaries instead of queueing them (what waits for it is one entry a symbol), and
never delays the book or its siblings. The serving processes cut the shallower depths their clients ask for
themselves. The health state travels the same way.

Quotes (``OrderbookQuotes.Quote``) need every level of the books, which only this process holds: a serving process
asks for a quote's updates when its first stream there opens, and this process follows its own broadcaster of that
quote (:class:`~orderbook.serving.quotes.ServedQuotes`, computed here) for it, one greenlet per quote and serving
process, sending each newest update as a QUOTE frame, until the serving process says its last stream of it ended
(or it goes). So a quote is walked once here, whoever streams it, and never from a top-levels summary.

The address is reserved here first with a bound, non-listening socket (so port 0 works and the port stays ours
while a serving process restarts), after checking that nothing else listens there: SO_REUSEPORT would otherwise
share the port silently with any other grpc server of the same user. A serving process that dies is restarted
(its clients reconnect to the others); when this process stops or dies, the link closes and they all end their
streams with UNAVAILABLE and exit.
"""

from __future__ import annotations

import errno
import logging
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from google.protobuf.message import DecodeError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from orderbook.backoff import Backoff
from orderbook.serving import link
from orderbook.address import Address
from orderbook.serving.broadcast import SummaryBroadcaster
from orderbook.serving.grpc_server import AddressInUse, ListenError, ServerStartError, TlsFiles
from orderbook.serving.quotes import ServedQuotes, read_key
from orderbook.serving.stats import ServingStats
from orderbook.serving.symbols import BOOK, ServedSymbols

log = logging.getLogger(__name__)

READY_TIMEOUT = 15.0
"""Seconds a new serving process gets to import, bind and say ready."""


@dataclass(frozen=True)
class WorkerSettings:
    """What every serving process is started with."""

    max_streams: int
    tls: TlsFiles | None
    log_level: str
    log_format: str
    grace: float = 1.0
    max_streams_per_connection: int | None = None

    def argv(self, link_fd: int, address: Address, symbols: Sequence[str], depth: int) -> list[str]:
        argv = [sys.executable, "-m", "orderbook.serving.worker", "--link-fd", str(link_fd),
                "--grpc-addr", str(address), "--symbols", ",".join(symbols), "--depth", str(depth),
                "--max-streams", str(self.max_streams),
                "--grace", str(self.grace),
                "--log-level", self.log_level, "--log-format", self.log_format]
        if self.max_streams_per_connection is not None:
            argv += ["--max-streams-per-connection", str(self.max_streams_per_connection)]
        if self.tls is not None:
            argv += ["--tls-cert", str(self.tls.cert_path), "--tls-key", str(self.tls.key_path)]
        return argv


def reserve_address(address: Address) -> socket.socket:
    """A bound, non-listening SO_REUSEPORT socket on ``address``; raises :class:`AddressInUse` if taken."""
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise ListenError(address, f"cannot resolve {address.host!r} ({error.strerror})") from None
    probe = socket.socket(family, kind, proto)
    reservation = socket.socket(family, kind, proto)
    try:
        for sock in (probe, reservation):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(sockaddr)  # without SO_REUSEPORT: fails if anyone at all has the port
        sockaddr = probe.getsockname()
        probe.close()
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reservation.bind(sockaddr)
    except OSError as error:
        probe.close()
        reservation.close()
        if error.errno == errno.EADDRINUSE:
            raise AddressInUse(address) from None
        raise ListenError(address, error.strerror or str(error)) from None
    return reservation


class _Worker:
    """One serving process and its link; ``index`` names it in the logs."""

    def __init__(self, index: int, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.index = index
        self.proc = proc
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.stats = ServingStats()
        self.write_turn = Semaphore(1)  # frames from the feeder and health updates never interleave
        self.quotes: dict[bytes, Event] = {}
        """The quotes it asked for, each with the waker of the greenlet sending it that quote's updates."""
        self.closed = False

    def send(self, data: bytes) -> None:
        with self.write_turn:
            self.sock.sendall(data)

    def close(self) -> None:
        self.closed = True
        for wake_up in self.quotes.values():
            wake_up.set()
        for closing in (self.reader, self.sock):
            try:
                closing.close()
            except OSError:
                pass


class ServingProcesses:
    """The gRPC endpoint as N serving processes; the same face as :class:`GrpcServer` to the application."""

    def __init__(self, served: ServedSymbols, address: Address, count: int, settings: WorkerSettings,
                 spawn: Callable[..., gevent.Greenlet] = gevent.spawn, quotes: ServedQuotes | None = None) -> None:
        """``quotes``: this process's quotes, which the serving processes ask for (None: they ask for none)."""
        self._served = served
        self._quotes = quotes
        self._address = address
        self._count = count
        self._settings = settings
        self._spawn = spawn
        self._reservation: socket.socket | None = None
        self._bound_address = address
        self._workers: dict[int, _Worker] = {}
        self._retired = ServingStats()  # counters of serving processes that ended, so the sums never go back
        self._serving = False
        self._stopping = False
        self.restarts_total = 0

    @property
    def port(self) -> int:
        if self._reservation is None:
            raise RuntimeError("the serving processes have not been started")
        return int(self._reservation.getsockname()[1])

    @property
    def processes(self) -> list[int]:
        """The pids of the serving processes running now."""
        return [worker.proc.pid for worker in self._workers.values()]

    def start(self) -> None:
        """Reserve the address, start every serving process and wait for each to listen, or raise
        :class:`ServerStartError` with the first one's reason."""
        self._reservation = reserve_address(self._address)
        self._bound_address = Address(self._address.host, self.port)
        launches = [gevent.spawn(self._first_launch, index) for index in range(self._count)]  # imports take a while
        try:
            for launch in gevent.iwait(launches):
                if (error := launch.get()) is not None:
                    raise error
        except BaseException:
            gevent.killall(launches)  # the ones still starting: else they would join after stop()
            self.stop(0)
            raise
        log.info("gRPC served by %d processes on %s (pids %s)", self._count, self._bound_address,
                 ", ".join(map(str, self.processes)))

    def set_serving(self, serving: bool) -> None:
        self._serving = serving
        frame = link.serving_frame(serving)
        for worker in list(self._workers.values()):
            self._spawn(self._send_quietly, worker, frame)  # never block the caller (a feed) on a full link

    def stats(self) -> ServingStats:
        total = ServingStats()
        total.add(self._retired)
        for worker in self._workers.values():
            total.add(worker.stats)
        return total

    def families(self) -> Iterable[Metric]:
        running = GaugeMetricFamily("orderbook_serving_processes", "Serving processes running (--serve-processes)")
        running.add_metric([], len(self._workers))
        restarts = CounterMetricFamily("orderbook_serving_process_restarts", "Serving processes that ended and "
                                       "were started again")
        restarts.add_metric([], self.restarts_total)
        return [running, restarts]

    def stop(self, grace: float) -> None:
        """Close every link (the serving processes end their streams within their grace and exit), then wait."""
        self._stopping = True
        self._served.close()
        if self._quotes is not None:
            self._quotes.close()
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.close()
        for worker in workers:
            try:
                worker.proc.wait(grace + 5)
            except subprocess.TimeoutExpired:
                log.warning("serving process %d did not stop; killing it", worker.proc.pid)
                worker.proc.kill()
                worker.proc.wait()
        if self._reservation is not None:
            self._reservation.close()
        if workers:
            log.info("gRPC serving processes on %s stopped", self._bound_address)

    # -- one serving process -------------------------------------------------------------------------------

    def _first_launch(self, index: int) -> ServerStartError | None:
        """:meth:`_launch` at start-up, the error returned: raised, gevent would print it as a crash."""
        try:
            self._launch(index)
        except ServerStartError as error:
            return error
        return None

    def _launch(self, index: int) -> None:
        ours, theirs = socket.socketpair()
        try:
            argv = self._settings.argv(theirs.fileno(), self._bound_address, self._served.symbols, self._served.depth)
            proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        worker = _Worker(index, proc, ours)
        try:
            with gevent.Timeout(READY_TIMEOUT, ServerStartError(
                    f"serving process {index} did not start listening within {READY_TIMEOUT:g} s")):
                first = link.read_message(worker.reader)
            if first is None or "ready" not in first:
                reason = (first or {}).get("error") or f"serving process {index} exited with {proc.wait()}"
                raise ServerStartError(str(reason))
        except BaseException:
            proc.kill()  # before closing the link, which it would find broken and complain about
            worker.close()
            proc.wait()
            raise
        self._workers[index] = worker
        worker.send(link.serving_frame(self._serving))
        self._spawn(self._feed, worker)
        self._spawn(self._watch, worker)

    def _feed(self, worker: _Worker) -> None:
        """Follow the books and hand each symbol's newest summary and state to the serving process, a batch of
        changes in one write."""
        try:
            for changes in self._served.follow(lambda: not worker.closed):
                worker.send(b"".join(self._frame(kind, symbol) for kind, symbol in changes))
        except OSError:
            pass  # the serving process is gone: _watch sees its link close and restarts it
        except Exception:
            # A serving process this feed no longer follows would serve a frozen book: end it (_watch restarts it
            # on a new link) and let the supervisor count and log what happened.
            worker.proc.kill()
            raise

    def _frame(self, kind: str, symbol: str) -> bytes:
        if kind == BOOK:
            full = self._served.broadcaster(symbol, 0)
            assert full.latest is not None  # a symbol's book changes only by a publish
            return link.summary_frame(symbol, full.latest, full.published_at)
        return link.state_frame(self._served.state(symbol))

    def _watch(self, worker: _Worker) -> None:
        """Read the serving process's reports until its link closes; then restart it unless stopping."""
        try:
            while (message := link.read_message(worker.reader)) is not None:
                stats = message.get("stats")
                if isinstance(stats, dict):
                    worker.stats = ServingStats.from_json(stats)
                if "quote" in message:
                    self._quote_asked(worker, bytes.fromhex(message["quote"]), message.get("open") is True)
        except (link.LinkError, OSError, KeyError, TypeError, ValueError, DecodeError) as error:
            log.error("serving process %d (pid %d): bad report: %s", worker.index, worker.proc.pid, error)
        if self._stopping or worker.closed:
            return
        self._retire(worker)
        code = worker.proc.wait()
        log.error("serving process %d (pid %d) ended with %s; its clients reconnect to the others; restarting",
                  worker.index, worker.proc.pid, code)
        self._restart(worker.index)

    def _quote_asked(self, worker: _Worker, key: bytes, open_: bool) -> None:
        """Start (``open_``) or stop sending ``worker`` the updates of the quote ``key``. Raises ``ValueError``,
        ``KeyError`` (an unknown symbol) or ``DecodeError`` for a key this process did not make."""
        if self._quotes is None:
            raise ValueError("quotes are not served")
        if self._served.unavailable is not None:
            return  # stopping: every stream ends
        self._served.resolve(read_key(key).symbol, 0)
        if not open_:
            wake_up = worker.quotes.pop(key, None)
            if wake_up is not None:
                wake_up.set()
        elif key not in worker.quotes:
            wake_up = worker.quotes[key] = SummaryBroadcaster.waker()
            self._spawn(self._send_quote, worker, key, wake_up, self._quotes)

    @staticmethod
    def _send_quote(worker: _Worker, key: bytes, wake_up: Event, quotes: ServedQuotes) -> None:
        """Send ``worker`` each newest update of ``key`` until it no longer asks for it."""
        try:
            for update in quotes.follow(key, lambda: not worker.closed and worker.quotes.get(key) is wake_up,
                                        wake_up):
                worker.send(link.quote_frame(key, update))
        except OSError:
            pass  # the serving process is gone: _watch restarts it

    def _retire(self, worker: _Worker) -> None:
        worker.close()
        if worker.proc.poll() is None:
            worker.proc.kill()
        self._workers.pop(worker.index, None)
        self._retired.add_counters(worker.stats)

    def _restart(self, index: int) -> None:
        backoff = Backoff(base=0.5, cap=10.0)
        while not self._stopping:
            gevent.sleep(backoff.next())
            if self._stopping:
                return
            self.restarts_total += 1
            try:
                self._launch(index)
                log.info("serving process %d restarted (pid %d)", index, self._workers[index].proc.pid)
                return
            except (ServerStartError, OSError) as error:  # OSError: fork failed, or the link broke at once
                log.error("serving process %d could not restart: %s", index, error)

    @staticmethod
    def _send_quietly(worker: _Worker, data: bytes) -> None:
        try:
            worker.send(data)
        except OSError:
            pass

