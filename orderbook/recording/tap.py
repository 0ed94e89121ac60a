"""Where the recording listens: at the transport boundary (every frame a venue connection hands the feed, and how
the connection opened and ended) and at the REST client (every answer, or why there was none). The feed itself
knows nothing of it: a venue is given a recording connector and HTTP client in place of its own."""

from __future__ import annotations

import time
from time import time_ns

import requests

from orderbook.recording.format import Kind
from orderbook.recording.writer import Recorder
from orderbook.rest import HttpClient
from orderbook.stream import (
    ConnectFailed,
    Connector,
    FrameTooLarge,
    Stream,
    StreamClosed,
    StreamError,
    StreamSilent,
)

CLOSE_REASONS: dict[type[StreamError], str] = {StreamSilent: "silence", FrameTooLarge: "too_large",
                                               StreamClosed: "disconnect"}


class RecordingStream:
    """A :class:`~orderbook.stream.Stream` that records every data frame it hands out (receive time in ns) and how
    it ended: the first error its reads raised, or closed by the service.

    The frames of a batch are handed to the recorder together, when the reader asks for the next batch's first
    frame (:meth:`recv`), or before any other record (:meth:`Recorder.record` asks), after any other connection's
    received before them (:meth:`Recorder.hand_over_held`), so that the records stay in the order they happened:
    one call per frame cost a tenth of ingest (``bin/bench --scenario record``)."""

    def __init__(self, inner: Stream, recorder: Recorder, connection: int) -> None:
        self._inner = inner
        self._recv = inner.recv
        self._recv_waiting = inner.recv_waiting
        self._recorder = recorder
        self._connection = connection
        self._held: list[tuple[int, bytes | str]] = []
        self._hold = self._held.append
        self._ended = False
        self.send = inner.send
        self.ping = inner.ping
        self.waiting = inner.waiting
        recorder.add_source(self)

    def recv(self) -> str | bytes:
        if self._held:
            self._recorder.hand_over_held()
        try:
            payload = self._recv()
        except StreamError as error:
            self._end(error)
            raise
        self._hold((time_ns(), payload))
        return payload

    def recv_waiting(self) -> str | bytes | None:
        try:
            payload = self._recv_waiting()
        except StreamError as error:
            self._end(error)
            raise
        if payload is not None:
            self._hold((time_ns(), payload))
        return payload

    def held_since(self) -> int | None:
        return self._held[0][0] if self._held else None

    def hand_over(self) -> None:
        if self._held:
            held = self._held
            self._held = []
            self._hold = self._held.append
            self._recorder.frames(self._connection, held)

    def close(self) -> None:
        self._finish("closed", "by the service")
        self._inner.close()

    def _end(self, error: StreamError) -> None:
        self._finish(CLOSE_REASONS.get(type(error), "disconnect"), str(error))

    def _finish(self, reason: str, detail: str) -> None:
        if not self._ended:
            self._ended = True
            self._recorder.record(Kind.CLOSED, time.time_ns(), self._connection, {"reason": reason, "detail": detail})
            self._recorder.remove_source(self)


def recording_connector(venue: str, connect: Connector, recorder: Recorder) -> Connector:
    """``connect``, its connections recorded as ``venue``'s."""

    def connect_recorded(url: str) -> Stream:
        try:
            stream = connect(url)
        except ConnectFailed as error:
            recorder.record(Kind.CONNECT_FAILED, time.time_ns(), 0, {"venue": venue, "url": url, "detail": str(error)})
            raise
        connection = recorder.new_connection()
        recorder.record(Kind.OPENED, time.time_ns(), connection, {"venue": venue, "url": url})
        return RecordingStream(stream, recorder, connection)

    return connect_recorded


class RecordingHttp:
    """An :class:`~orderbook.rest.HttpClient` that records every answer (URL, status, body, when it was asked and
    answered), and every request that got none (status 0 and the error)."""

    def __init__(self, inner: HttpClient, recorder: Recorder, venue: str) -> None:
        self._inner = inner
        self._recorder = recorder
        self._venue = venue

    def get(self, url: str, *, timeout: tuple[float, float]) -> requests.Response:
        sent = time.time_ns()
        try:
            response = self._inner.get(url, timeout=timeout)
        except requests.RequestException as error:
            self._recorder.record(Kind.HTTP, time.time_ns(), 0, {"venue": self._venue, "url": url, "status": 0,
                                                                 "sent_ns": sent, "error": str(error)})
            raise
        self._recorder.record(Kind.HTTP, time.time_ns(), 0, {"venue": self._venue, "url": url,
                                                             "status": response.status_code, "sent_ns": sent},
                              response.content)
        return response

    def taken(self, url: str) -> None:
        """The service is done with the snapshot answer it was given for ``url``
        (:meth:`~orderbook.rest.SnapshotFetcher.taken`)."""
        self._recorder.record(Kind.TAKEN, time.time_ns(), 0, {"venue": self._venue, "url": url})
