"""``bin/replay --lockstep METRICS_URL``: each recorded event played once the service has done with the one before,
so that a service reading two venues on two connections applies their batches in the recorded order and
publishes the recorded sequence of summaries.

A batch is followed by a ping on the connections it went to; the service's reader answers a ping once it has applied
the frames before it, ends its batch there whatever follows, and publishes what they changed before any other
greenlet of it runs (:meth:`orderbook.websocket_frames.FrameReader.message_waiting`), so the next event waits for
the pongs. A snapshot answer is held until the replay reaches the moment it was answered live
(:meth:`~orderbook.replay.venue.ReplayedVenue.release`): where the recording says so, the moment the recorded
service was done with it (:class:`~orderbook.replay.timeline.Asked`), and then the next event waits until the
service is done with every snapshot answer the venue has given it (``orderbook_snapshots_taken_total`` on its
``/metrics``); and until it has published as many summaries as the recorded one had by then
(``orderbook_summaries_published_total``): the book comes in step on it, and is published, where it did live.
The service must follow the replayed symbols and no others (its counts are of every symbol it follows), and
publish every change of them (``--record-summaries``, or a client of each: a symbol nothing reads is held back).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

from gevent import socket
from gevent.event import Event

from orderbook.replay.venue import ReplayedVenue

PUBLISHED = b"orderbook_summaries_published_total"
TAKEN = b"orderbook_snapshots_taken_total"
WAIT = 10.0
"""How long one step waits for the service before the lockstep is given up (said once on stderr)."""
PONG_POLL = 0.0002
METRICS_POLL = 0.002
READ_LIMIT = 1 << 24


class Lockstep:
    def __init__(self, metrics_url: str, stopping: Event, say: Callable[[str], None]) -> None:
        parts = urlsplit(metrics_url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._request = (f"GET {parts.path or '/metrics'} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n").encode()
        self._stopping = stopping
        self._say = say
        self._base: dict[bytes, int] = {}
        """The service's counts (by series) when the replay began, of those counted from then."""
        self._expected = 0
        """Summaries the recorded service had published since the replay began, up to the current event."""
        self.lost: str | None = None
        """Why the lockstep was given up (the service published what the recording did not, or did not answer)."""

    def begin(self) -> None:
        self._base = {PUBLISHED: self._counts_now().get(PUBLISHED, 0)}

    def expect(self, published: int) -> None:
        """The recorded service published ``published`` summaries after the event just played."""
        self._expected += published

    def wait_read(self, venue: ReplayedVenue, symbols: set[str], published: int) -> bool:
        """Wait until the connections of ``symbols`` have read the batch just sent; False when stopped first."""
        self.expect(published)
        if self.lost is not None:
            return not self._stopping.is_set()
        pings = venue.ping(symbols)
        give_up = time.monotonic() + WAIT
        while not all(venue.has_read(ws, pongs) for ws, pongs in pings):
            if time.monotonic() >= give_up:
                self._lose(f"no pong from {venue.name} within {WAIT:g} s")
                break
            if self._stopping.wait(PONG_POLL):
                return False
        return True

    def wait_taken(self, venue: ReplayedVenue) -> bool:
        """Wait until the service is done with every snapshot answer ``venue`` has given it (counted from its
        start: it asks nothing of anyone else); False when stopped first."""
        return self._wait_count(b'%s{exchange="%s"}' % (TAKEN, venue.name.encode()), lambda: venue.snapshots_answered,
                                f"{venue.name} snapshot answers done with", "the replay gave it")

    def wait_published(self, published: int) -> bool:
        """Wait until the service has published as many summaries as the recorded one had after the event just
        played; False when stopped first."""
        self.expect(published)
        return self._wait_count(PUBLISHED, lambda: self._expected, "summaries published", "the recording has")

    def _wait_count(self, series: bytes, expected_now: Callable[[], int], what: str, whose: str) -> bool:
        """Wait until the service's ``series`` has grown by ``expected_now()`` (``whose`` count, for the log) since
        the replay began."""
        give_up = time.monotonic() + WAIT
        while self.lost is None:
            count, expected = self._counts_now().get(series), expected_now()
            grown = None if count is None else count - self._base.get(series, 0)
            if grown is not None and grown > expected:
                self._lose(f"the service has {grown} {what} where {whose} {expected} by then")
            elif grown == expected:
                break
            elif time.monotonic() >= give_up:
                self._lose(f"the service has {grown} {what} after {WAIT:g} s where {whose} {expected} by then")
            elif self._stopping.wait(METRICS_POLL):
                return False
        return not self._stopping.is_set()

    def outcome(self) -> str:
        if self.lost is not None:
            return f"lockstep lost: {self.lost}"
        return f"in lockstep: the service published the {self._expected} summaries recorded"

    def _lose(self, why: str) -> None:
        self.lost = why
        self._say(f"lockstep lost, playing on without it: {why}")

    def _counts_now(self) -> dict[bytes, int]:
        """The service's counts read off its ``/metrics``, by series (name and labels as written there); empty when
        they cannot be read."""
        try:
            with socket.create_connection(self._address, timeout=WAIT) as connection:
                connection.sendall(self._request)
                chunks, size = [], 0
                while size < READ_LIMIT and (chunk := connection.recv(1 << 16)):
                    chunks.append(chunk)
                    size += len(chunk)
        except OSError:
            return {}
        counts = {}
        for line in b"".join(chunks).splitlines():
            series, _, value = line.rpartition(b" ")
            if series.startswith((PUBLISHED, TAKEN)):
                try:
                    counts[series] = int(float(value))
                except ValueError:
                    continue
        return counts
