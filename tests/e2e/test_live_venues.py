"""The real venues: the service against Binance and Bitstamp themselves, for the default pair.

Marked ``live``: deselected by ``make test`` (no test run by CI reaches the internet); run them with
``.venv/bin/python -m pytest -m live``. Without a route to the venues they are skipped, saying which endpoint
could not be reached. The endpoints are the server's own configuration, so the ``ORDERBOOK_*_URL`` variables
point both the reachability check and the server elsewhere (Binance.US, a market-data mirror, or the simulator
to try the test itself).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from orderbook.config import load_config
from tests.metrics_scrape import scrape
from tests.support.service import BookReader, ServerProcess

pytestmark = pytest.mark.live

EXCHANGES = {"binance", "bitstamp"}
IN_STEP_WITHIN = 60.0
STAY = 60.0
AUDIT_INTERVAL = 15
BREAKING = ("gap", "out_of_order", "overflow", "crossed", "past_snapshot", "audit", "bad_frame")
"""Rebuild reasons that would mean the book went wrong (a disconnect or a server's request to move would not)."""


def unreachable() -> str | None:
    """Why the configured venues cannot be reached, or None when every endpoint accepts a TCP connection."""
    config = load_config(["--metrics-addr", "off"], os.environ)
    for url in (url for venue in config.venues for url in (venue.ws_url, venue.rest_url)):
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=5).close()
        except OSError as error:
            return f"{parts.hostname}:{port} cannot be reached ({error})"
    return None


@pytest.fixture(scope="module")
def venues_reachable() -> None:
    reason = unreachable()
    if reason is not None:
        pytest.skip(f"the live tests need the real Binance and Bitstamp endpoints: {reason}")


def test_in_step_with_both_real_venues_for_a_minute_and_the_audits_find_no_divergence(
    venues_reachable: None, server_factory: Callable[..., ServerProcess],
    reader_factory: Callable[[str], BookReader],
) -> None:
    server = server_factory(None, "--audit-interval", str(AUDIT_INTERVAL))
    server.wait_serving(IN_STEP_WITHIN)
    reader = reader_factory(server.target)
    reader.wait_for(lambda book: book.exchanges() == EXCHANGES, IN_STEP_WITHIN, "with both real venues")

    end = time.monotonic() + STAY
    while time.monotonic() < end:
        samples = scrape(server.metrics_port)
        for exchange in EXCHANGES:
            assert samples("orderbook_exchange_in_step", exchange=exchange) == 1, f"{exchange} left the book"
        time.sleep(5)

    samples = scrape(server.metrics_port)
    for exchange in EXCHANGES:
        assert samples("orderbook_audits_total", exchange=exchange, result="match") >= 2, exchange
        assert samples("orderbook_audits_total", exchange=exchange, result="divergent") == 0, server.log()[-3000:]
        for reason in BREAKING:
            assert samples("orderbook_book_rebuilds_total", exchange=exchange, reason=reason) == 0, (exchange, reason)
    book = reader.latest
    assert book is not None and book.exchanges() == EXCHANGES
    for exchange in EXCHANGES:
        bids = [row.price for row in book.bids if row.exchange == exchange]
        asks = [row.price for row in book.asks if row.exchange == exchange]
        assert not bids or not asks or max(bids) < min(asks), f"{exchange}'s own book is crossed"
    assert "Traceback" not in server.log()
