"""Fault building blocks shared by both venues: scripted REST failures and malformed payloads.

What a fault looks like on the wire is venue-specific (each venue wraps these pieces in its own frame shape);
what is common lives here so the two venues do not each grow their own copy.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from orderbook.simulator.wire import Response

REST_STATUSES = ("429", "418", "500", "403", "200_error", "hang")
"""Every scripted REST answer; each venue accepts those it is known to give (``Exchange.rest_statuses``).

``403``: Binance's web application firewall blocked the request (docs: "HTTP 403 return code is used when the WAF
Limit (Web Application Firewall) has been violated"); the body is an HTML error page, not JSON. ``200_error``:
Bitstamp answers some errors with HTTP 200 and ``{"status": "error", ...}`` (docs/protocols.md), so a client that
trusts the status code parses an error as a book."""
JUNK_ROW = ("0.00000000", "1.00000000")
"""A bid at price 0: real Bitstamp has sent one at the end of every snapshot of a pair (gocryptotrader drops it in
``filterOrderbookZeroBidPrice``). No true book holds it; the ``junk_rows`` fault and setting add it."""
MALFORMED_KINDS = ("not_json", "unknown_shape", "non_numeric", "negative", "nan", "huge")
DEFAULT_HUGE_BYTES = 4 << 20


class FaultError(ValueError):
    """A fault request that cannot be honoured (bad parameters, wrong venue); the control API answers 400."""


@dataclass(frozen=True, slots=True)
class RestFault:
    status: str
    retry_after: int


class RestFaults:
    """The next N REST answers of one venue, scripted: 429 (with Retry-After), 418, 500, 403, an error with
    status 200, or never answering."""

    def __init__(self) -> None:
        self._queue: deque[RestFault] = deque()

    def arm(self, status: str, count: int, retry_after: int) -> None:
        if status not in REST_STATUSES:
            raise FaultError(f"rest status must be one of {REST_STATUSES}, got {status!r}")
        if count < 1 or retry_after < 0:
            raise FaultError("count must be >= 1 and retry_after >= 0")
        self._queue.extend(RestFault(status, retry_after) for _ in range(count))

    def pending(self) -> int:
        return len(self._queue)

    def take(self) -> RestFault | None:
        return self._queue.popleft() if self._queue else None


def rest_fault_response(fault: RestFault, error_body: Callable[[str], dict[str, object] | str]) -> Response | None:
    """The scripted answer, with the venue's error body for the status; None means never answer.

    A body given as a dict is sent as JSON, one given as a string as HTML (a firewall's page, not the API's).
    """
    if fault.status == "hang":
        return None
    status = 200 if fault.status == "200_error" else int(fault.status)
    headers = {"Retry-After": str(fault.retry_after)} if status in (418, 429) else {}
    body = error_body(fault.status)
    if isinstance(body, str):
        return Response(status, body.encode(), {"Content-Type": "text/html", **headers})
    return Response.json(body, status=status, headers=headers)


def bad_levels(kind: str) -> list[list[str]]:
    """One level whose values a strict parser must reject."""
    if kind == "non_numeric":
        return [["abc", "1.00000000"]]
    if kind == "negative":
        return [["0.05000000", "-1.00000000"]]
    if kind == "nan":
        return [["NaN", "NaN"]]
    raise FaultError(f"no bad level of kind {kind!r}")


def huge_levels(size: int) -> list[list[str]]:
    """Harmless removals (of a price no book holds) repeated until the JSON is about ``size`` bytes.

    A client that accepts the frame stays correct; one that caps message size must survive the cap.
    """
    level = ["0.00000001", "0.00000000"]
    per_level = len(json.dumps(level, separators=(",", ":"))) + 1
    return [level] * max(1, size // per_level)


def check_kind(kind: str, size: int) -> None:
    if kind not in MALFORMED_KINDS:
        raise FaultError(f"malformed kind must be one of {MALFORMED_KINDS}, got {kind!r}")
    if kind == "huge" and not 1 <= size <= 256 << 20:
        raise FaultError("size must be in [1, 256 MiB]")
