"""One venue as ``bin/replay`` serves it over the simulator's wire (:class:`~orderbook.simulator.wire.WireServer`):
WebSocket subscriptions taken as the venue takes them (Binance: streams in the URL or in a ``SUBSCRIBE``; Bitstamp:
``bts:subscribe``) and answered, a symbol's recorded frames sent to the connections subscribed to it, and REST
requests answered with the recorded answer for that moment of the replay (:func:`~orderbook.replay.timeline.answer_at`)
and counted.

In lockstep, a snapshot request is held until the player reaches the moment it was answered live
(:meth:`ReplayedVenue.hold_asks`), and a batch is followed by a ping whose pong says the service has read it
(:meth:`ReplayedVenue.ping`).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import gevent

from orderbook.replay.timeline import BITSTAMP_DIFF, SNAPSHOT_PATHS, Answer, answer_at, request_key
from orderbook.simulator.wire import Request, Response, WebSocket, WireServer, encode_ping_frame, encode_text_frame


RELEASE_POLL = 0.001
"""How often a held request looks whether the player has released it."""


def _binance_symbol(stream: str) -> str:
    return stream.split("@", 1)[0].upper()


class ReplayedVenue:
    def __init__(self, name: str, answers: list[Answer], position: Callable[[], int], port: int) -> None:
        self.name = name
        self._answers = answers
        self._position = position
        self._subscribed: dict[WebSocket, set[str]] = {}
        self.asked: dict[tuple[str, str], int] = {}
        """Requests asked (answered, or held in lockstep), by :func:`~orderbook.replay.timeline.request_key`."""
        self._held_asks: dict[tuple[str, str], int] = {}
        """In lockstep, per request, how many of its asks are held until released (as many as were recorded)."""
        self._released: dict[tuple[str, str], int] = {}
        self.answered: dict[tuple[str, str], int] = {}
        """Requests answered, by :func:`~orderbook.replay.timeline.request_key` (as :attr:`asked`)."""
        self.snapshots_answered = 0
        """Snapshot requests answered (each counted before its answer goes out)."""
        self._pinged: dict[WebSocket, int] = {}
        self._ponged: dict[WebSocket, int] = {}
        self.server = WireServer(port=port, http=self._http, ws=self._ws, name=f"replay-{name}")

    def subscribers(self, symbol: str) -> list[WebSocket]:
        return [ws for ws, symbols in self._subscribed.items() if symbol in symbols and not ws.closed]

    def queued_bytes(self) -> int:
        return max((ws.queued_bytes for ws in self._subscribed), default=0)

    def drop(self) -> None:
        """End every connection, as the venue did; with a close frame after the frames already queued (a reset
        could destroy them unread), so the service reads every frame the recorded service had read."""
        for ws in list(self._subscribed):
            ws.close(1001, "the recorded connection ended here")

    def hold_asks(self, recorded_asks: dict[tuple[str, str], int]) -> None:
        """Hold the first ``recorded_asks[request]`` asks of each request until :meth:`release` lets them be
        answered (later asks, and requests never recorded, are answered at once)."""
        self._held_asks = dict(recorded_asks)

    def release(self, request: tuple[str, str], count: int) -> None:
        """Answer the held asks of ``request`` up to the ``count``-th, with the answer of the replay's position."""
        self._released[request] = max(self._released.get(request, 0), count)

    def ping(self, symbols: set[str]) -> list[tuple[WebSocket, int]]:
        """A ping after the frames queued to the connections subscribed to ``symbols``: each connection, and how
        many pongs it will have sent once it has read them (:meth:`has_read`)."""
        frame = encode_ping_frame(b"lockstep")
        sent = []
        for ws in {ws for symbol in symbols for ws in self.subscribers(symbol)}:
            ws.send_frame(frame)
            self._pinged[ws] = self._pinged.get(ws, 0) + 1
            sent.append((ws, self._pinged[ws]))
        return sent

    def has_read(self, ws: WebSocket, pongs: int) -> bool:
        """Whether ``ws`` has answered ``pongs`` pings (or is gone: nothing more will be read on it)."""
        return ws.closed or self._ponged.get(ws, 0) >= pongs

    def send(self, symbol: str, payload: bytes) -> None:
        frame = encode_text_frame(payload)
        for ws in self.subscribers(symbol):
            ws.send_frame(frame)

    def _http(self, request: Request) -> Response:
        key = request_key(request.path, request.query)
        self.asked[key] = ask = self.asked.get(key, 0) + 1
        while ask <= self._held_asks.get(key, 0) and self._released.get(key, 0) < ask:
            gevent.sleep(RELEASE_POLL)
        answer = answer_at(self._answers, request.path, request.query, self._position())
        self.answered[key] = self.answered.get(key, 0) + 1
        if request.path.startswith(SNAPSHOT_PATHS):
            self.snapshots_answered += 1  # the service says when it is done with each: orderbook.rest.SnapshotFetcher
        if answer is None:
            return Response(404, f"no answer to {request.path} recorded".encode())
        return Response(answer.status, answer.body, {"Content-Type": "application/json"})

    def _ws(self, ws: WebSocket) -> None:
        symbols = self._subscribed.setdefault(ws, set())
        ws.on_control_frame = lambda kind: self._on_control_frame(ws, kind)
        if self.name == "binance":
            path = ws.path.rstrip("/")
            names = ws.query.get("streams", "") if path.startswith("/stream") else path.removeprefix("/ws")
            symbols.update(_binance_symbol(name) for name in names.split("/") if name)
        try:
            while (text := ws.receive()) is not None:
                self._on_message(ws, symbols, text)
        finally:
            self._subscribed.pop(ws, None)
            self._pinged.pop(ws, None)
            self._ponged.pop(ws, None)

    def _on_control_frame(self, ws: WebSocket, kind: str) -> None:
        if kind == "pong":
            self._ponged[ws] = self._ponged.get(ws, 0) + 1

    def _on_message(self, ws: WebSocket, symbols: set[str], text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return  # not a request: the venue would answer with an error the service does not need
        if not isinstance(message, dict):
            return
        if self.name == "binance":
            params = message.get("params") or []
            names = [name for name in params if isinstance(name, str)]
            if message.get("method") == "SUBSCRIBE":
                symbols.update(map(_binance_symbol, names))
            elif message.get("method") == "UNSUBSCRIBE":
                symbols.difference_update(map(_binance_symbol, names))
            ws.send_text(json.dumps({"result": None, "id": message.get("id")}))
            return
        data = message.get("data")
        channel = data.get("channel") if isinstance(data, dict) else None
        if not isinstance(channel, str) or message.get("event") not in ("bts:subscribe", "bts:unsubscribe"):
            return
        subscribing = message["event"] == "bts:subscribe"
        if channel.startswith(BITSTAMP_DIFF):
            symbol = channel.removeprefix(BITSTAMP_DIFF).upper()
            if subscribing:
                symbols.add(symbol)
            else:
                symbols.discard(symbol)
        event = "bts:subscription_succeeded" if subscribing else "bts:unsubscription_succeeded"
        ws.send_text(json.dumps({"event": event, "channel": channel, "data": {}}))
