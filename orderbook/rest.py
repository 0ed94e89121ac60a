"""One venue's REST requests: its request budget, the queue that paces them, the requests themselves, and what
each kind of answer means.

Everything that asks a venue for a book goes through the venue's one :class:`SnapshotFetcher`, whatever the
symbol (first snapshots, their retries when too old, rebuilds, deepening, the drift audit, the listing of symbols
at start), so that together they stay inside the venue's limits (docs/protocols.md): Binance's request weight per
minute, read back from ``X-MBX-USED-WEIGHT-1M``; Bitstamp's requests per 10 minutes. Requests wait their turn in
one queue, the most urgent first (:class:`Priority`), and are paced: never a burst, even when a hundred symbols ask
at once after a reconnect. A retry is never sooner than the budget, a ``Retry-After`` or a backoff allows.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import gevent
import requests
from gevent.event import Event

from orderbook.backoff import Backoff
from orderbook.exchanges.base import ErrorBody, ExchangeError, Listing, Venue
from orderbook.exchanges.messages import BadMessage, BookSnapshot, Pause
from orderbook.metrics import VenueMetrics

log = logging.getLogger(__name__)

RAW_EXCERPT = 200
WINDOW = 60.0
SNAPSHOT_SHARE = 0.5
"""Snapshots (a book's first, its retries, and the deeper one it is rebuilt on once in step) never take the venue's
minute above half its limit; they are paced evenly at that rate (Binance: 100-level snapshots ten a second,
1,000-level ones one a second; Bitstamp: eight a second)."""
AUDIT_SHARE = 0.1
"""Audits only run while the minute's use, theirs included, stays within a tenth of the limit."""
RATE_LIMITED_PAUSE = 10.0
"""How long to hold off after a rate-limit answer that names no Retry-After (Bitstamp's 400.002 body)."""
LISTING_ATTEMPTS = 3


class Priority(IntEnum):
    """Whose request goes first when several wait: a book that was served and broke, then books being built for
    the first time, then books in step on a shallow first snapshot being deepened, then audits of books that are
    in step."""

    REBUILD = 0
    START = 1
    DEEPEN = 2
    AUDIT = 3


class SymbolNotListed(ExchangeError):
    """The venue does not list the symbol (Binance -1121, Bitstamp 404): it is left out there."""

    def __init__(self, venue: str, symbol: str, detail: str) -> None:
        super().__init__(f"{venue} does not list {symbol}: {detail}")
        self.symbol = symbol


class RestBudget:
    """A venue's request allowance over a minute: what this process spent, and what the venue says was used.

    The venue's figure (Binance's ``X-MBX-USED-WEIGHT-1M``) counts every client on the same IP and holds until
    its minute ends; this process's own spending is counted over a rolling minute. The larger one is the use.
    Requests are also spaced evenly, at the rate that would spend :data:`SNAPSHOT_SHARE` of the limit in a minute.
    """

    def __init__(self, limit_per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit_per_minute
        self._clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self._reported: tuple[float, int] | None = None  # (end of the venue's minute, weight used in it)
        self._not_before = 0.0
        self._next_slot = 0.0

    def used(self) -> int:
        now = self._clock()
        spent = self._spent
        while spent and spent[0][0] <= now - WINDOW:
            spent.popleft()
        own = sum(weight for _, weight in spent)
        reported = self._reported[1] if self._reported is not None and now < self._reported[0] else 0
        return max(own, reported)

    def delay(self, weight: int, share: float) -> float:
        """Seconds to wait before a request of ``weight`` is paced and keeps the minute within ``share`` of the
        limit."""
        now = self._clock()
        wait = max(0.0, self._not_before - now, self._next_slot - now)
        if self.used() + weight <= share * self.limit:
            return wait
        ends = [self._reported[0] - now] if self._reported is not None and now < self._reported[0] else []
        if self._spent:
            ends.append(self._spent[0][0] + WINDOW - now)
        return max(wait, min(ends, default=1.0), 0.05)

    def spend(self, weight: int) -> None:
        now = self._clock()
        self._spent.append((now, weight))
        self._next_slot = max(now, self._next_slot) + WINDOW * weight / (SNAPSHOT_SHARE * self.limit)

    def report(self, used: int) -> None:
        """The venue's own count for its current minute."""
        now = self._clock()
        self._reported = ((now // WINDOW + 1) * WINDOW, used)

    def hold_off(self, seconds: float) -> None:
        """No request at all for ``seconds`` (a Retry-After, a rate-limit answer); kept across sessions."""
        self._not_before = max(self._not_before, self._clock() + seconds)


@dataclass(order=True)
class _Turn:
    priority: int
    number: int
    woken: Event = field(default_factory=Event, compare=False)


class RequestQueue:
    """Requests wait here for the budget, one at a time, the most urgent (then the oldest) first."""

    def __init__(self, budget: RestBudget) -> None:
        self.budget = budget
        self._waiting: list[_Turn] = []
        self._numbers = itertools.count()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def wait_turn(self, weight: int, share: float, priority: Priority) -> None:
        """Return once this request is at the head of the queue and the budget allows it; spends its weight."""
        turn = _Turn(priority, next(self._numbers))
        heapq.heappush(self._waiting, turn)
        if self._waiting[0] is turn and len(self._waiting) > 1:
            self._waiting[1].woken.set()  # the one it overtook was waiting for the budget: it waits for us now
        try:
            while True:
                if self._waiting[0] is turn:
                    delay = self.budget.delay(weight, share)
                    if delay <= 0:
                        break
                    turn.woken.wait(delay)
                else:
                    turn.woken.wait()
                turn.woken.clear()
        finally:
            head = self._waiting[0] is turn
            self._waiting.remove(turn)
            heapq.heapify(self._waiting)
            if head and self._waiting:
                self._waiting[0].woken.set()
        self.budget.spend(weight)


@dataclass(frozen=True, slots=True)
class _Failed:
    what: str
    """How the request failed, for the log line."""
    hold_off: float | None = None
    """How long the venue asked us to wait (Retry-After, a rate-limit body), if it did."""


class HttpClient(Protocol):
    """What the fetcher asks of HTTP: a GET with (connect, read) timeouts. A requests.Session, or a test's fake."""

    def get(self, url: str, *, timeout: tuple[float, float]) -> requests.Response: ...


def venue_session(base_url: str) -> requests.Session:
    """A session for a venue's REST requests under ``base_url`` that reads the environment once, where requests
    reads it again for every request (~0.2 ms of the hub each time, twice a request, measured on this project's
    machine: the largest part of a request's first hold): the proxies for that host (``HTTPS_PROXY`` and the like,
    ``NO_PROXY`` honoured) and a CA bundle (``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``), as requests would
    pick them. ``.netrc`` is not read: the venues' book and listing endpoints are public."""
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


class SnapshotFetcher:
    """One venue's REST side, shared by every symbol followed there."""

    def __init__(
        self,
        venue: Venue,
        metrics: VenueMetrics,
        *,
        http: HttpClient,
        connect_timeout: float,
        read_timeout: float,
        backoff: Backoff,
        on_taken: Callable[[str], None] | None = None,
    ) -> None:
        """``on_taken(url)``: told each time the service is done with a snapshot answer (:meth:`taken`)."""
        self.venue = venue
        self.name = venue.name
        self.budget = RestBudget(venue.rest_limit)
        self.queue = RequestQueue(self.budget)
        self._metrics = metrics
        self._http = http
        self._timeouts = (connect_timeout, read_timeout)
        self._backoff = backoff
        self._on_taken = on_taken
        self.listing_url = venue.listing_url
        """Where the venue's listing is read: its fallback once the first answered 404."""

    def taken(self, symbol: str, depth: int | None = None) -> None:
        """The service is done with the answer to its request for ``symbol``'s snapshot at ``depth`` (as asked of
        :meth:`fetch` or :meth:`fetch_once`): loaded (or found older than the stream), compared by an audit or a
        deepening, or given up. Whoever is handed a snapshot says so once it is done with it; an answer that is not
        handed out (an error, an unusable body) is done with here. Counted, and recorded (``--record``: a
        ``TAKEN`` record, where a lockstep replay passes the answer to the service it replays to: what the
        recorded service read before it was done with the answer is read before the answer, as it was)."""
        self._metrics.snapshot_taken()
        if self._on_taken is not None:
            self._on_taken(self.venue.snapshot_url(symbol, depth))

    def fetch(self, symbol: str, priority: Priority = Priority.START, depth: int | None = None) -> BookSnapshot:
        """Retry until a usable snapshot arrives; raises :class:`SymbolNotListed` when the venue does not list it.
        ``depth``: levels a side (None: the venue's :attr:`~orderbook.exchanges.base.Venue.snapshot_depth`). The
        caller says when it is done with the snapshot (:meth:`taken`)."""
        retry = Backoff(self._backoff.base, self._backoff.cap)
        while True:
            result = self._snapshot(symbol, SNAPSHOT_SHARE, priority, depth)
            if isinstance(result, BookSnapshot):
                return result
            delay = result.hold_off if result.hold_off is not None else retry.next()
            log.warning("%s %s: snapshot request %s; retrying in %.1f s", self.name, symbol, result.what, delay)
            gevent.sleep(delay)

    def fetch_once(self, symbol: str, share: float, priority: Priority = Priority.AUDIT, *, depth: int | None = None,
                   on_turn: Callable[[], None] | None = None, pause: Pause = gevent.sleep) -> BookSnapshot | None:
        """One request, once the budget allows it at ``share``; None (counted and logged) if it failed.
        ``on_turn``: called when its turn has come, just before the request goes out. The caller says when it is
        done with the snapshot (:meth:`taken`).

        ``pause``: how the load and the parse of a deep body let others run (:meth:`Venue.parse_snapshot`).
        By default ``gevent.sleep(0)``: the streams woken meanwhile run, and the frames that arrive are read after the
        snapshot is loaded, in one batch, whenever they came (a lockstep replay publishes what was recorded only
        so: tests/e2e/test_replay_e2e.py; :meth:`fetch` parses so too). An audit, which loads nothing, passes
        :func:`~orderbook.hub_turn.pass_turn`: the readers go first."""
        result = self._snapshot(symbol, share, priority, depth, on_turn, pause)
        if isinstance(result, BookSnapshot):
            return result
        log.warning("%s %s: snapshot request %s", self.name, symbol, result.what)
        return None

    def listing(self, attempts: int = LISTING_ATTEMPTS) -> Listing | None:
        """The symbols the venue lists and their status; None when it could not be had in ``attempts`` (at start,
        every symbol is then tried, and a snapshot's answer tells). A listing URL that answers 404 is replaced by
        the venue's fallback (Bitstamp's old ``trading-pairs-info``), once, for good, at no attempt's cost."""
        retry = Backoff(self._backoff.base, self._backoff.cap)
        attempt = 0
        while attempt < attempts:
            result = self._request(self.listing_url, self.venue.listing_weight, SNAPSHOT_SHARE, Priority.START)
            if isinstance(result, requests.Response):
                fallback = self.venue.listing_fallback_url
                if result.status_code == 404 and fallback is not None and self.listing_url != fallback:
                    log.warning("%s: %s answered 404: listing from %s from now on", self.name, self.listing_url,
                                fallback)
                    self.listing_url = fallback
                    continue
                if result.status_code == 200:
                    try:
                        return self.venue.parse_listing(result.content)
                    except BadMessage as error:
                        result = _Failed(f"answered an unusable listing ({error})")
                else:
                    result = self._failure(result)
            attempt += 1
            log.warning("%s: listing request %s (attempt %d of %d)", self.name, result.what, attempt, attempts)
            if attempt < attempts:
                gevent.sleep(result.hold_off if result.hold_off is not None else retry.next())
        return None

    def _snapshot(self, symbol: str, share: float, priority: Priority, depth: int | None = None,
                  on_turn: Callable[[], None] | None = None, pause: Pause = gevent.sleep) -> BookSnapshot | _Failed:
        """Wait for the budget, ask once, and say what came back. Raises SymbolNotListed. An answer other than a
        usable snapshot is done with here (:meth:`taken`)."""
        venue = self.venue
        result = self._request(venue.snapshot_url(symbol, depth), venue.snapshot_weight(depth), share, priority,
                               on_turn)
        if isinstance(result, _Failed):
            return result  # no answer
        try:
            snapshot = self._read_snapshot(symbol, result, pause)
        except BaseException:
            self.taken(symbol, depth)
            raise
        if isinstance(snapshot, _Failed):
            self.taken(symbol, depth)
        return snapshot

    def _read_snapshot(self, symbol: str, result: requests.Response, pause: Pause) -> BookSnapshot | _Failed:
        """The snapshot the answer ``result`` holds, or why it holds none. Raises SymbolNotListed."""
        status = result.status_code
        if status != 200:
            if self.venue.unknown_symbol(status, result.content):
                raise SymbolNotListed(self.venue.title, symbol, f"HTTP {status}: {result.content!r:.{RAW_EXCERPT}}")
            return self._failure(result)
        try:
            snapshot = self.venue.parse_snapshot(result.content, pause=pause)
        except ErrorBody as error:
            self._metrics.snapshot_error("error_body")
            hold_off = RATE_LIMITED_PAUSE if error.rate_limited else None
            if hold_off is not None:
                self.budget.hold_off(hold_off)
            return _Failed(f"answered with an error body ({error}{', rate limited' if hold_off else ''})", hold_off)
        except BadMessage as error:
            self._metrics.snapshot_error("bad_body")
            return _Failed(f"answered an unusable snapshot ({error}): {result.content!r:.{RAW_EXCERPT}}")
        for reason in snapshot.ignored_rows:
            self._metrics.ignored_row(reason)
        return snapshot

    def _request(self, url: str, weight: int, share: float, priority: Priority,
                 on_turn: Callable[[], None] | None = None) -> requests.Response | _Failed:
        self.queue.wait_turn(weight, share, priority)
        if on_turn is not None:
            on_turn()
        started = time.perf_counter()
        try:
            response = self._http.get(url, timeout=self._timeouts)
        except requests.RequestException as error:
            self._metrics.snapshot_error("network")
            return _Failed(f"failed: {error}")
        self._metrics.snapshot_fetched(time.perf_counter() - started)
        self._read_used_weight(response)
        return response

    def _failure(self, response: requests.Response) -> _Failed:
        status = response.status_code
        self._metrics.snapshot_error(str(status))
        retry_after = parse_retry_after(response) if status in (418, 429) else None
        if retry_after is not None:
            self.budget.hold_off(retry_after)
        meaning = self.venue.status_meanings.get(status)
        return _Failed(f"answered HTTP {status}{f' ({meaning})' if meaning else ''}: "
                       f"{response.content!r:.{RAW_EXCERPT}}", retry_after)

    def _read_used_weight(self, response: requests.Response) -> None:
        header = self.venue.used_weight_header
        if header is None:
            return
        value = response.headers.get(header, "")
        if value.isdigit():
            self.budget.report(int(value))


def parse_retry_after(response: requests.Response, default: float = 60.0) -> float:
    """Seconds from a ``Retry-After`` header (Binance sends seconds); a rate-limited venue is not retried sooner."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default
