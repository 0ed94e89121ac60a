"""The feed's timings and limits, and why a connection's session ended."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FeedSettings:
    connect_timeout: float = 5.0
    snapshot_timeout: float = 10.0
    silence_timeout: float = 10.0
    """No byte at all for this long (data, pong, heartbeat reply) and the connection is taken for dead."""
    max_frame_bytes: int = 1 << 20
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    healthy_after: float = 30.0
    """A session that lasted this long resets the backoff."""
    max_connection_age: float = 84_600.0
    """A connection this old is replaced, make-before-break: Binance cuts every connection at 24 hours."""
    audit_interval: float = 60.0
    """Seconds between drift audits of an in-step book (0: none); with many symbols, as often as the venue's
    audit budget allows, each symbol in turn."""
    listing_interval: float = 300.0
    """Seconds between readings of the venue's listing while running (``--listing-interval``): a symbol that stops
    trading there leaves, one that trades again comes back."""
    max_lag: float = 2.0
    """Seconds a connection may be behind the venue before its books leave the merged book (``--max-lag``)."""
    stream_lag_bound: float = 5.0
    """How long an audit waits for the stream to catch up with its snapshot (Bitstamp's REST can be ahead)."""
    reader_turn: float = 0.002
    """Seconds a connection's reader works through frames already waiting (one batch, published at its end) before
    it publishes what they changed and lets the other greenlets run: a quiet stream's frame is a batch of one,
    published at once; a backlog is published every turn."""

    @property
    def keepalive_interval(self) -> float:
        return self.silence_timeout / 3


HANDOVER_REASONS = frozenset({"server_request", "max_age"})
"""Sessions that end while their connection still works: its books are served until the successor's are in step."""


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """Why a connection's session ended: every symbol on it is rebuilt on a new connection."""

    reason: str
    detail: str = ""

    @property
    def connection_works(self) -> bool:
        """The venue asked us to move, or the connection is too old, while it still works: not a failure, so the
        next connection is made at once, and this one's books are served until the successor's are in step."""
        return self.reason in HANDOVER_REASONS

    def __str__(self) -> str:
        return f"{self.reason}{': ' if self.detail else ''}{self.detail}"
