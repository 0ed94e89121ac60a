"""One venue's REST snapshots: its request budget, the request itself, and what each kind of answer means.

Everything that asks a venue for its book goes through one :class:`SnapshotFetcher` per venue (first
snapshots, their retries when too old, the drift audit), so that together they stay inside the venue's limits
(docs/protocols.md): Binance's request weight per minute, read back from ``X-MBX-USED-WEIGHT-1M``; Bitstamp's
requests per 10 minutes. A retry is never sooner than the budget, a ``Retry-After`` or a backoff allows.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import requests

from orderbook.backoff import Backoff
from orderbook.exchanges.base import ErrorBody, ExchangeProtocol
from orderbook.exchanges.messages import BadMessage, BookSnapshot
from orderbook.metrics import ExchangeMetrics

log = logging.getLogger(__name__)

RAW_EXCERPT = 200
WINDOW = 60.0
SNAPSHOT_SHARE = 0.5
"""Snapshots (a book's first, and its retries) never take the venue's minute above half its limit."""
AUDIT_SHARE = 0.1
"""Audits only run while the minute's use, theirs included, stays within a tenth of the limit."""
RATE_LIMITED_PAUSE = 10.0
"""How long to hold off after a rate-limit answer that names no Retry-After (Bitstamp's 400.002 body)."""


class RestBudget:
    """A venue's request allowance over a minute: what this process spent, and what the venue says was used.

    The venue's figure (Binance's ``X-MBX-USED-WEIGHT-1M``) counts every client on the same IP and holds until
    its minute ends; this process's own spending is counted over a rolling minute. The larger one is the use.
    """

    def __init__(self, limit_per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit_per_minute
        self._clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self._reported: tuple[float, int] | None = None  # (end of the venue's minute, weight used in it)
        self._not_before = 0.0

    def used(self) -> int:
        now = self._clock()
        spent = self._spent
        while spent and spent[0][0] <= now - WINDOW:
            spent.popleft()
        own = sum(weight for _, weight in spent)
        reported = self._reported[1] if self._reported is not None and now < self._reported[0] else 0
        return max(own, reported)

    def delay(self, weight: int, share: float) -> float:
        """Seconds to wait before a request of ``weight`` keeps the minute within ``share`` of the limit."""
        now = self._clock()
        wait = max(0.0, self._not_before - now)
        if self.used() + weight <= share * self.limit:
            return wait
        ends = [self._reported[0] - now] if self._reported is not None and now < self._reported[0] else []
        if self._spent:
            ends.append(self._spent[0][0] + WINDOW - now)
        return max(wait, min(ends, default=1.0), 0.05)

    def spend(self, weight: int) -> None:
        self._spent.append((self._clock(), weight))

    def report(self, used: int) -> None:
        """The venue's own count for its current minute."""
        now = self._clock()
        self._reported = ((now // WINDOW + 1) * WINDOW, used)

    def hold_off(self, seconds: float) -> None:
        """No request at all for ``seconds`` (a Retry-After, a rate-limit answer); kept across sessions."""
        self._not_before = max(self._not_before, self._clock() + seconds)


@dataclass(frozen=True, slots=True)
class _Failed:
    what: str
    """How the request failed, for the log line."""
    hold_off: float | None = None
    """How long the venue asked us to wait (Retry-After, a rate-limit body), if it did."""


class SnapshotFetcher:
    def __init__(
        self,
        protocol: ExchangeProtocol,
        metrics: ExchangeMetrics,
        *,
        http: requests.Session,
        connect_timeout: float,
        read_timeout: float,
        backoff: Backoff,
    ) -> None:
        self.protocol = protocol
        self.name = protocol.name
        self.budget = RestBudget(protocol.rest_limit)
        self._metrics = metrics
        self._http = http
        self._timeouts = (connect_timeout, read_timeout)
        self._backoff = backoff

    def fetch(self) -> BookSnapshot:
        """Retry until a usable snapshot arrives; raise :class:`ExchangeError` only for a configuration error."""
        retry = Backoff(self._backoff.base, self._backoff.cap)
        while True:
            result = self._request(SNAPSHOT_SHARE)
            if isinstance(result, BookSnapshot):
                return result
            delay = result.hold_off if result.hold_off is not None else retry.next()
            log.warning("%s: snapshot request %s; retrying in %.1f s", self.name, result.what, delay)
            gevent.sleep(delay)

    def fetch_once(self, share: float) -> BookSnapshot | None:
        """One request, once the budget allows it at ``share``; None (counted and logged) if it failed."""
        result = self._request(share)
        if isinstance(result, BookSnapshot):
            return result
        log.warning("%s: snapshot request %s", self.name, result.what)
        return None

    def _request(self, share: float) -> BookSnapshot | _Failed:
        """Wait for the budget, ask once, and say what came back. Raises ExchangeError for a wrong config."""
        weight = self.protocol.snapshot_weight
        while (delay := self.budget.delay(weight, share)) > 0:
            gevent.sleep(delay)
        self.budget.spend(weight)
        started = time.perf_counter()
        try:
            response = self._http.get(self.protocol.snapshot_url, timeout=self._timeouts)
        except requests.RequestException as error:
            self._metrics.snapshot_error("network")
            return _Failed(f"failed: {error}")
        self._metrics.snapshot_fetched(time.perf_counter() - started)
        self._read_used_weight(response)
        status = response.status_code
        if status == 200:
            try:
                snapshot = self.protocol.parse_snapshot(response.content)
            except ErrorBody as error:
                self._metrics.snapshot_error("error_body")
                pause = RATE_LIMITED_PAUSE if error.rate_limited else None
                if pause is not None:
                    self.budget.hold_off(pause)
                return _Failed(f"answered with an error body ({error}{', rate limited' if pause else ''})", pause)
            except BadMessage as error:
                self._metrics.snapshot_error("bad_body")
                return _Failed(f"answered an unusable snapshot ({error}): {response.content!r:.{RAW_EXCERPT}}")
            for reason in snapshot.ignored_rows:
                self._metrics.ignored_row(reason)
            return snapshot
        self._metrics.snapshot_error(str(status))
        fatal = self.protocol.snapshot_error(status, response.content)
        if fatal is not None:
            raise fatal
        retry_after = parse_retry_after(response) if status in (418, 429) else None
        if retry_after is not None:
            self.budget.hold_off(retry_after)
        meaning = self.protocol.status_meanings.get(status)
        return _Failed(f"answered HTTP {status}{f' ({meaning})' if meaning else ''}: "
                       f"{response.content!r:.{RAW_EXCERPT}}", retry_after)

    def _read_used_weight(self, response: requests.Response) -> None:
        header = self.protocol.used_weight_header
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

