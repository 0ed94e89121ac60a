"""A venue in memory, as the feed sees it through its two boundaries: streams (:mod:`orderbook.stream`) the test
writes frames into, and REST answers (a ``requests.Session`` stand-in) the test sets per symbol.

The feed under test runs in this process's gevent hub; nothing here opens a socket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gevent
import requests
from gevent.queue import Queue
from requests.structures import CaseInsensitiveDict

from orderbook.exchanges.base import Venue
from orderbook.stream import StreamClosed, StreamSilent

_CLOSED = object()
_PING = object()


class FakeStream:
    """One connection: ``recv`` returns what the test pushed, in order, and raises what the test ends it with."""

    def __init__(self, url: str, silence_timeout: float | None = None) -> None:
        self.url = url
        self.sent: list[str] = []
        self.pings = 0
        self.pongs = 0
        """Pings of the venue's (:meth:`push_ping`) the reader has read, and so answered."""
        self.closed = False
        self._frames: Queue = Queue()
        self._silence_timeout = silence_timeout
        self._endless: Iterator[str | bytes] | None = None

    def pour(self, frames: Iterator[str | bytes]) -> None:
        """A backlog that never drains: once the frames pushed are read, ``recv`` takes the next of ``frames`` (an
        endless iterator), and frames always wait. Its first frame is pushed, for a reader waiting on an empty
        connection."""
        self._endless = frames
        self.push(next(frames))

    def push(self, *frames: str | bytes) -> None:
        for frame in frames:
            self._frames.put(frame)

    def push_ping(self) -> None:
        """The venue pings: a control frame, answered by the transport and never handed to the reader."""
        self._frames.put(_PING)

    def cut(self) -> None:
        """The venue closes the connection: the reader's next ``recv`` raises StreamClosed."""
        self._frames.put(_CLOSED)

    def recv(self) -> str | bytes:
        while True:
            frame = self._next()
            if frame is not _PING:
                return frame

    def recv_waiting(self) -> str | bytes | None:
        """The next frame if one waits; None when none does, or when a ping comes first (answered: it ends the
        reader's batch, as the transport's does)."""
        if not self.waiting():
            return None
        frame = self._next()
        return None if frame is _PING else frame

    def _next(self) -> Any:
        if self.closed:
            raise StreamClosed("closed by the client")
        if self._endless is not None and self._frames.empty():
            return next(self._endless)
        try:
            frame = self._frames.get(timeout=self._silence_timeout)
        except gevent.queue.Empty:
            raise StreamSilent("nothing received") from None
        if frame is _CLOSED:
            raise StreamClosed("closed by the venue")
        if frame is _PING:
            self.pongs += 1
        return frame

    def waiting(self) -> bool:
        return self._endless is not None or not self._frames.empty()

    def send(self, text: str) -> None:
        if self.closed:
            raise StreamClosed("closed")
        self.sent.append(text)

    def ping(self) -> None:
        self.pings += 1

    def close(self) -> None:
        self.closed = True


class FakeVenue:
    """Connections and REST answers for one venue. Unset snapshots answer the venue's unknown-symbol error."""

    def __init__(self, venue: Venue, listed: Iterable[str] | None = None) -> None:
        self.venue = venue
        self.streams: list[FakeStream] = []
        self.requests: list[str] = []
        self.snapshots: dict[str, dict[int | None, tuple[int, bytes]]] = {}
        """Per symbol, the answer to a snapshot request of each depth (None: of any depth not set)."""
        self.listed = None if listed is None else list(listed)

    # -- the stream boundary ---------------------------------------------------------------------------------

    def connect(self, url: str) -> FakeStream:
        stream = FakeStream(url)
        self.streams.append(stream)
        return stream

    @property
    def stream(self) -> FakeStream:
        """The newest connection."""
        return self.streams[-1]

    # -- REST ------------------------------------------------------------------------------------------------

    def set_snapshot(self, symbol: str, body: dict | bytes, status: int = 200, depth: int | None = None) -> None:
        """The answer to ``symbol``'s snapshot requests of ``depth`` levels a side (None: of any other depth)."""
        answer = (status, body if isinstance(body, bytes) else json.dumps(body).encode())
        self.snapshots.setdefault(symbol, {})[depth] = answer

    def get(self, url: str, timeout: object = None) -> requests.Response:
        self.requests.append(url)
        if url == self.venue.listing_url:
            if self.listed is None:
                return _response(404, b'{"code":-1000,"msg":"Unknown path."}')
            return _response(200, self._listing_body(self.listed))
        depth = requested_depth(url)
        for symbol, answers in self.snapshots.items():
            if url == self.venue.snapshot_url(symbol, depth):
                return _response(*answers.get(depth, answers.get(None, (404, b""))))
        if self.venue.name == "binance":
            return _response(400, b'{"code":-1121,"msg":"Invalid symbol."}')
        return _response(404, b"<html>Not found</html>")

    def snapshot_requests(self, symbol: str, depth: int | None = None) -> int:
        """How many snapshots of ``symbol`` were asked for (of ``depth`` levels a side; None: of any depth)."""
        return sum(1 for url in self.requests if (depth is None or requested_depth(url) == depth)
                   and url == self.venue.snapshot_url(symbol, requested_depth(url)))

    def _listing_body(self, listed: list[str]) -> bytes:
        if self.venue.name == "binance":
            return json.dumps({"symbols": [{"symbol": s, "status": "TRADING"} for s in listed]}).encode()
        return json.dumps([{"url_symbol": s.lower(), "trading": "Enabled"} for s in listed]).encode()


def requested_depth(url: str) -> int | None:
    """The levels a side a snapshot URL asks for (Binance's ``limit``); None when it names none."""
    limit = parse_qs(urlsplit(url).query).get("limit")
    return int(limit[0]) if limit else None


def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body  # private: how a Response is built by hand
    response.headers = CaseInsensitiveDict()
    return response


def binance_diff(symbol: str, first: int, last: int, bids=(), asks=(), age: float = 0.0) -> str:
    """A combined-stream depth event, as Binance sends it, stamped ``age`` seconds ago (a live venue's: now)."""
    return json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": {
        "e": "depthUpdate", "E": int((time.time() - age) * 1000), "s": symbol, "U": first, "u": last,
        "b": [list(level) for level in bids], "a": [list(level) for level in asks]}})


def binance_snapshot(last_id: int, bids, asks) -> dict:
    return {"lastUpdateId": last_id, "bids": [list(level) for level in bids], "asks": [list(level) for level in asks]}
