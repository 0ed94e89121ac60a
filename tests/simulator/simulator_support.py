"""Client-side helpers for the simulator tests: plain blocking websocket-client and requests, as a user would write."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import websocket
from websocket import ABNF

from orderbook.prices import parse_decimal
from orderbook.simulator.process import SimulatorControl
from tests.support.waiting import wait_until


def connect(url: str, timeout: float = 5.0) -> websocket.WebSocket:
    return websocket.create_connection(url, timeout=timeout, enable_multithread=True)


def recv_json(ws: websocket.WebSocket, timeout: float = 5.0) -> Any:
    ws.settimeout(timeout)
    return json.loads(ws.recv())


def recv_until(ws: websocket.WebSocket, predicate, timeout: float = 5.0, limit: int = 100_000) -> Any:
    """The first JSON message satisfying ``predicate`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    for _ in range(limit):
        ws.settimeout(max(0.01, deadline - time.monotonic()))
        message = json.loads(ws.recv())
        if predicate(message):
            return message
    raise AssertionError("no matching message")


def next_event(ws: websocket.WebSocket, timeout: float = 5.0) -> tuple[str, Any]:
    """What the client observes next: ("text", str), ("close", code), ("reset", exc) or ("timeout", None).

    Pings are answered (websocket-client does that inside recv) and skipped.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ("timeout", None)
        ws.settimeout(remaining)
        try:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return ("timeout", None)
        except (ConnectionError, websocket.WebSocketConnectionClosedException, OSError) as exc:
            return ("reset", exc)
        if opcode == ABNF.OPCODE_TEXT:
            return ("text", frame.data.decode())
        if opcode == ABNF.OPCODE_CLOSE:
            code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
            return ("close", code)


def drain_until_end(ws: websocket.WebSocket, timeout: float = 5.0) -> tuple[str, Any, list[str]]:
    """Read text frames until the connection ends; returns (how it ended, detail, texts seen)."""
    texts: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        kind, detail = next_event(ws, max(0.01, deadline - time.monotonic()))
        if kind != "text":
            return kind, detail, texts
        texts.append(detail)


def quiet_for(ws: websocket.WebSocket, seconds: float) -> bool:
    """True when no text frame arrives within ``seconds``."""
    kind, _ = next_event(ws, seconds)
    return kind == "timeout"


def levels(raw: list[list[str]]) -> dict[int, int]:
    return {parse_decimal(price): parse_decimal(amount) for price, amount in raw}


def raw_websocket(url: str, path: str) -> socket.socket:
    """A bare TCP WebSocket handshake; the caller then never answers pings (a broken client)."""
    host, port = url.removeprefix("ws://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Bytes received until the server ends the connection (True) or ``timeout`` passes (False)."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def market_events(control: SimulatorControl) -> dict[tuple[str, str], int]:
    """Events published so far by every market: (venue, symbol) -> count."""
    stats = control.stats()
    return {(venue, symbol): market["events"] for venue in ("binance", "bitstamp")
            for symbol, market in stats[venue]["markets"].items()}


def run_until_events(control: SimulatorControl, count: int, timeout: float = 10.0) -> None:
    """Resume the paused simulator until every market (each symbol on each venue) has published at least ``count``
    more events, then pause: the traffic a test needs, however slow the machine, rather than what a fixed time
    happens to give."""
    before = market_events(control)
    control.resume()
    try:
        wait_until(lambda: market_events(control), timeout, f"{count} more events on every market",
                   accept=lambda now: all(now[key] - before[key] >= count for key in before), interval=0.02)
    finally:
        control.pause()
