"""What the resilience tests need beyond the e2e harness: a reader that remembers when each summary arrived and
which exchanges it showed, the server's /metrics and log read as values, and the usual fault-then-recovery flow.

Timing bounds are deliberately loose (the machine is shared): they separate "immediate" from "after a timeout"
and "recovered" from "stuck", nothing finer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

from orderbook.simulator.process import SimulatorControl, SimulatorProcess
from tests.metrics_scrape import Samples, scrape
from tests.support.service import Book, BookReader, ServerProcess, wait_until_matches_truth

EXCHANGES = ("binance", "bitstamp")
SILENCE_TIMEOUT = 2.0
"""What the server is started with (``--silence-timeout``)."""
IMMEDIATE = 1.5
"""Detection bound for faults that are visible at once (a reset, a close frame, a diff that does not fit)."""
SETTLE = 3.0
"""The served top-10 must equal the truth within this (plus the backoff in force) once a fault clears."""
MAX_STALL = 1.0
"""The longest the healthy exchange may go without a summary showing it, at the rates used (100 events/s)."""
SIM_ARGS = ("--seed", "11", "--rate", "100")

_SESSION_ENDED = re.compile(r"(\w+): session ended \((\w+)\); reconnecting in ([\d.]+) s")
_SNAPSHOT_RETRY = re.compile(r"(\w+) \w+: snapshot request answered HTTP \d+.*; retrying in ([\d.]+) s")


def other(exchange: str) -> str:
    return EXCHANGES[1 - EXCHANGES.index(exchange)]


@dataclass(frozen=True)
class Seen:
    at: float
    """time.monotonic() when the summary was read."""
    exchanges: frozenset[str]


class _Timestamped:
    """Wraps a gRPC response stream: records every summary's arrival before the reader handles it."""

    def __init__(self, call: Any, history: list[Seen]) -> None:
        self._call = call
        self._history = history

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        summary = next(self._call)
        names = frozenset(level.exchange for level in (*summary.bids, *summary.asks))
        self._history.append(Seen(time.monotonic(), names))
        return summary

    def cancel(self) -> bool:
        return self._call.cancel()


class WatchedReader(BookReader):
    """A BookReader that keeps the arrival time and exchanges of every summary, to measure outages and stalls."""

    def __post_init__(self) -> None:
        self.history: list[Seen] = []
        super().__post_init__()

    def _read(self) -> None:
        self._call = _Timestamped(self._call, self.history)
        super()._read()

    def wait_seen(self, predicate: Callable[[frozenset[str]], bool], since: float, timeout: float, what: str) -> float:
        """The arrival time of the first summary read at or after ``since`` whose exchanges satisfy ``predicate``."""
        deadline = time.monotonic() + timeout
        index = 0
        with self._changed:
            while True:
                history = self.history
                while index < len(history):
                    seen = history[index]
                    index += 1
                    if seen.at >= since and predicate(seen.exchanges):
                        return seen.at
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no summary {what} within {timeout:.1f} s; latest: {self.latest}"
                assert self.error is None, f"stream failed: {self.error}"
                self._changed.wait(min(remaining, 0.1))

    def absences(self, exchange: str, start: float, end: float) -> list[float]:
        """How long each stretch of summaries without ``exchange`` lasted, between ``start`` and ``end``."""
        spans: list[float] = []
        gone_at: float | None = None
        for seen in self._between(start, end):
            if exchange not in seen.exchanges and gone_at is None:
                gone_at = seen.at
            elif exchange in seen.exchanges and gone_at is not None:
                spans.append(seen.at - gone_at)
                gone_at = None
        if gone_at is not None:
            spans.append(end - gone_at)
        return spans

    def longest_stall(self, exchange: str, start: float, end: float) -> float:
        """The longest time between ``start`` and ``end`` with no summary showing ``exchange``."""
        times = [start, *(seen.at for seen in self._between(start, end) if exchange in seen.exchanges), end]
        return max(b - a for a, b in pairwise(times))

    def _between(self, start: float, end: float) -> list[Seen]:
        return [seen for seen in list(self.history) if start <= seen.at <= end]


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much one sample grew between two scrapes."""
    return after(name, **labels) - before(name, **labels)


def changed(before: Samples, after: Samples, name: str, **labels: str) -> dict[str, float]:
    """Increments of every sample of ``name`` matching ``labels``, keyed by the labels not given: only the nonzero.

    The ``symbol`` label is left out of the keys: these systems follow one symbol."""
    old, new = before.labelled(name, **labels), after.labelled(name, **labels)
    out: dict[str, float] = {}
    for key in old.keys() | new.keys():
        grew = new.get(key, 0.0) - old.get(key, 0.0)
        if grew:
            out[",".join(f"{k}={v}" for k, v in sorted(key) if k not in labels and k != "symbol")] = grew
    return out


@dataclass
class Outage:
    """What one fault did to one exchange, as the client and the server's log saw it."""

    injected: float
    left: float
    back: float
    backoff: float
    other_stall: float

    @property
    def detected_after(self) -> float:
        return self.left - self.injected

    @property
    def recovered_after(self) -> float:
        return self.back - self.left


@dataclass
class System:
    """One simulator, one server started with ``--silence-timeout 2``, one reader that has seen both exchanges."""

    simulator: SimulatorProcess
    server: ServerProcess
    reader: WatchedReader
    _log_mark: int = field(default=0)

    @property
    def control(self) -> SimulatorControl:
        return self.simulator.control

    def metrics(self) -> Samples:
        return scrape(self.server.metrics_port)

    def mark_log(self) -> None:
        """Later :meth:`new_log` calls return only what the server logged after this point."""
        self._log_mark = len(self.server.log())

    def new_log(self) -> str:
        return self.server.log()[self._log_mark:]

    def wait_log(self, pattern: re.Pattern[str], timeout: float = 3.0) -> list[re.Match[str]]:
        """Every match of ``pattern`` in the log since :meth:`mark_log`, waiting until there is one."""
        deadline = time.monotonic() + timeout
        while True:
            matches = list(pattern.finditer(self.new_log()))
            if matches:
                return matches
            assert time.monotonic() < deadline, f"the server never logged {pattern.pattern!r}:\n{self.new_log()}"
            time.sleep(0.05)

    def backoffs(self, exchange: str) -> list[float]:
        """The reconnect delays the server logged for ``exchange`` since :meth:`mark_log` (waits for one)."""
        matches = self.wait_log(_SESSION_ENDED)
        return [float(m.group(3)) for m in matches if m.group(1) == exchange]

    def snapshot_retries(self, exchange: str) -> list[float]:
        """The snapshot retry delays the server logged for ``exchange`` since :meth:`mark_log`."""
        return [float(m.group(2)) for m in _SNAPSHOT_RETRY.finditer(self.new_log()) if m.group(1) == exchange]

    def truth(self) -> Book:
        return Book.from_truth(self.control.truth(10)["merged"])

    def truth_of(self, exchange: str) -> Book:
        """The true top-10 of ``exchange`` alone: what is served while the other exchange is rebuilding."""
        book = self.control.truth(10)[exchange]
        bids = [{"exchange": exchange, "price": price, "amount": amount} for price, amount in book["bids"]]
        asks = [{"exchange": exchange, "price": price, "amount": amount} for price, amount in book["asks"]]
        spread = str(Decimal(asks[0]["price"]) - Decimal(bids[0]["price"])) if bids and asks else None
        return Book.from_truth({"spread": spread, "bids": bids, "asks": asks})

    def settle(self, timeout: float = SETTLE) -> Book:
        """Pause the simulator; the served book must then equal the true merged top-10."""
        self.control.pause()
        book = wait_until_matches_truth(self.reader, self.truth, timeout)
        assert book.exchanges() == set(EXCHANGES)
        return book

    def peak_rss(self) -> int | None:
        """The server's peak resident set (VmHWM, bytes) where /proc has it."""
        status = Path(f"/proc/{self.server.proc.pid}/status")
        if not status.exists():
            return None
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None

    def outage(self, exchange: str, inject: Callable[[], object], *, detect_within: float = IMMEDIATE,
               clear: Callable[[], object] | None = None, extra: float = 0.0, reconnects: bool = True) -> Outage:
        """Inject a fault that takes ``exchange`` out; measure detection, the other's stalls and the recovery.

        ``clear`` (if any) ends the fault once the exchange has left the served book. Recovery must come within
        SETTLE + the reconnect backoff the server logged + ``extra`` (REST waits the test arranged); then the
        simulator is paused and the served book must equal the truth. ``reconnects``: whether the fault ends the
        connection; a fault in one symbol's stream (a gap, a bad diff) must not, the book being rebuilt in place.
        """
        self.mark_log()
        injected = time.monotonic()
        inject()
        left = self.reader.wait_seen(lambda names: exchange not in names, injected, detect_within,
                                     f"without {exchange}")
        if clear is not None:
            clear()
        backoff = sum(self.backoffs(exchange)) if reconnects else 0.0
        bound = SETTLE + backoff + extra
        back = self.reader.wait_seen(lambda names: exchange in names, left,
                                     left + bound - time.monotonic(), f"with {exchange} again (bound {bound:.1f} s)")
        outage = Outage(injected, left, back, backoff, self.reader.longest_stall(other(exchange), injected, back))
        print(f"{exchange}: detected after {outage.detected_after:.3f} s, back {outage.recovered_after:.3f} s later "
              f"(backoff {backoff:.1f} s); {other(exchange)}'s longest stall {outage.other_stall:.3f} s")
        assert outage.other_stall < MAX_STALL, f"{other(exchange)} stalled for {outage.other_stall:.2f} s"
        if not reconnects:
            ended = [m.group(0) for m in _SESSION_ENDED.finditer(self.new_log()) if m.group(1) == exchange]
            assert ended == [], f"the connection was dropped for a fault in one book: {ended}"
        self.settle()
        return outage

    def assert_survived(self) -> None:
        """Still running, nothing unhandled in the log, and a clean exit on SIGTERM."""
        assert self.server.proc.poll() is None, f"the server died:\n{self.server.log()[-3000:]}"
        assert self.reader.error is None, f"the client's stream failed: {self.reader.error}"
        log = self.server.log()
        for sign in ("Traceback", " failed with ", "CRITICAL", "ERROR"):
            assert sign not in log, f"{sign!r} in the server's log:\n{log[-3000:]}"
        assert self.server.terminate() == 0


class RestWatch:
    """Polls the simulator's REST request count for one exchange on a thread, noting when each request came."""

    def __init__(self, control_url: str, exchange: str, interval: float = 0.03) -> None:
        self._control = SimulatorControl(control_url)
        self._exchange = exchange
        self._interval = interval
        self._stop = threading.Event()
        self.arrivals: list[float] = []
        self._count = self._start = self._read()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> int:
        return int(self._control.stats()[self._exchange]["rest_requests"])

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._poll()

    def _poll(self) -> None:
        count = self._read()
        now = time.monotonic()
        self.arrivals.extend([now] * (count - self._count))
        self._count = count

    def requests(self) -> int:
        """The requests since the watch began, counted now (also after :meth:`stop`)."""
        return self._read() - self._start

    def stop(self) -> list[float]:
        """Stop polling (after one last look) and return the arrival times seen."""
        self._stop.set()
        self._thread.join(5)
        self._poll()
        self._control.end_session()
        return self.arrivals
