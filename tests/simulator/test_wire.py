"""The simulator's HTTP + WebSocket transport, exercised with the client libraries the product uses.

The server runs on this thread's gevent hub without monkey-patching (other tests share the process); every
blocking client call runs on a native thread of the hub's pool via ``call``, so server greenlets keep running.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import gevent
import pytest
import requests
import websocket
from websocket import ABNF

from orderbook.simulator.wire import Request, Response, WebSocket, WireServer, encode_text_frame
from tests.support.waiting import wait_until

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def call(func: Callable[..., Any], *args: Any) -> Any:
    """Run blocking client code on a native thread while the server's greenlets keep running."""
    return gevent.get_hub().threadpool.apply(func, args)


def background(func: Callable[..., Any], *args: Any) -> Any:
    """Like ``call`` but returns at once; ``.get()`` the result later."""
    return gevent.get_hub().threadpool.spawn(func, *args)


def on_hub(condition: Callable[[], object], what: str, timeout: float = 3.0) -> None:
    """Wait for ``condition`` with the one polling loop, yielding to the server's greenlets (on this thread's hub)
    between looks."""
    wait_until(condition, timeout, what, interval=0.01, sleep=gevent.sleep)


@pytest.fixture
def serve() -> Iterator[Callable[..., WireServer]]:
    servers: list[WireServer] = []

    def start(**kwargs: Any) -> WireServer:
        server = WireServer(**kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(timeout=0.2)


def ws_connect(server: WireServer, path: str = "/") -> websocket.WebSocket:
    return call(lambda: websocket.create_connection(server.url("ws") + path, timeout=5))


def only_connection(server: WireServer) -> WebSocket:
    on_hub(lambda: len(server.connections()) == 1, "the one connection")
    return server.connections()[0]


def echo(ws: WebSocket) -> None:
    while (message := ws.receive()) is not None:
        ws.send_text(message)


def idle(ws: WebSocket) -> None:
    """A Binance-like handler: never reads; the market pushes frames from elsewhere."""
    while not ws.closed:
        gevent.sleep(0.05)


class RawClient:
    """A hand-written WebSocket client for what websocket-client will not do (never pong, unmasked frames)."""

    def __init__(self, port: int, path: str = "/", version: str = "13") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n".encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return data

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self._recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        return b0 & 0x0F, self._read(length)

    def send_frame(self, opcode: int, payload: bytes, masked: bool = True) -> None:
        head = struct.pack("!BB", 0x80 | opcode, (0x80 if masked else 0) | len(payload))
        if masked:
            mask = os.urandom(4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            head += mask
        self.sock.sendall(head + payload)

    def frames_until_gone(self) -> tuple[list[int], type[BaseException]]:
        """Opcodes received until the connection ends, and how it ended."""
        opcodes: list[int] = []
        try:
            while True:
                opcodes.append(self.recv_frame()[0])
        except (EOFError, OSError) as exc:
            return opcodes, type(exc)


# ---------------------------------------------------------------- HTTP


def test_session_keeps_one_connection_and_gets_json(serve: Callable[..., WireServer]) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response.json({"lastUpdateId": 7, "path": request.path, "query": request.query})

    server = serve(http=handler)

    def client() -> list[requests.Response]:
        with requests.Session() as session:
            return [
                session.get(server.url() + "/api/v3/depth?symbol=ETHBTC&limit=5&limit=9", timeout=5),
                session.get(server.url() + "/api/v2/order_book/eth%20btc/", timeout=5),
            ]

    first, second = call(client)
    assert first.status_code == 200 and first.headers["Content-Type"] == "application/json"
    assert first.text == '{"lastUpdateId":7,"path":"/api/v3/depth","query":{"symbol":"ETHBTC","limit":"5"}}'
    assert second.json()["path"] == "/api/v2/order_book/eth btc/"
    assert first.headers["Connection"] == "keep-alive"
    assert [r.method for r in seen] == ["GET", "GET"]
    assert seen[0].remote == seen[1].remote  # same client port: one TCP connection
    assert seen[0].headers["host"] == f"127.0.0.1:{server.port}"


def test_post_body_and_delayed_answer(serve: Callable[..., WireServer]) -> None:
    def handler(request: Request) -> Response:
        gevent.sleep(0.2)
        return Response(201, request.body[::-1], {"X-Kind": "reversed"})

    server = serve(http=handler)
    started = time.monotonic()
    reply = call(lambda: requests.post(server.url() + "/echo", data=b"abc123", timeout=5))
    assert time.monotonic() - started >= 0.2
    assert (reply.status_code, reply.reason, reply.content) == (201, "Created", b"321cba")
    assert reply.headers["X-Kind"] == "reversed"


def test_handler_exception_gives_500_and_connection_stays_usable(serve: Callable[..., WireServer]) -> None:
    ports: list[int] = []

    def handler(request: Request) -> Response:
        ports.append(request.remote[1])
        if request.path == "/boom":
            raise RuntimeError("venue bug")
        return Response(200, b"fine")

    server = serve(http=handler)

    def client() -> tuple[int, int, str]:
        with requests.Session() as session:
            bad = session.get(server.url() + "/boom", timeout=5)
            good = session.get(server.url() + "/ok", timeout=5)
            return bad.status_code, good.status_code, good.text

    assert call(client) == (500, 200, "fine")
    assert len(ports) == 2 and ports[0] == ports[1]


def test_unanswered_request_times_out_then_abort_all_drops_it(serve: Callable[..., WireServer]) -> None:
    asked: list[str] = []

    def handler(request: Request) -> None:
        asked.append(request.path)

    server = serve(http=handler)
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(lambda: requests.get(server.url() + "/api/v3/depth", timeout=(2, 0.3)))

    pending = background(lambda: requests.get(server.url() + "/api/v3/depth", timeout=(2, 10)))
    on_hub(lambda: len(asked) == 2, "both requests at the handler")
    started = time.monotonic()
    server.abort_all()
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        pending.get()
    assert not isinstance(caught.value, requests.exceptions.ReadTimeout)
    assert time.monotonic() - started < 5


def raw_http(port: int, data: bytes) -> bytes:
    """Send bytes, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"NONSENSE\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (70 << 10) + b"\r\n\r\n",
         b"HTTP/1.1 431 Request Header Fields Too Large"),
        # The phrase is the standard library's: "Request Entity Too Large" before Python 3.13, "Content Too Large"
        # (RFC 9110's name) since.
        (b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", f"HTTP/1.1 413 {HTTPStatus(413).phrase}".encode()),
        (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
    ],
)
def test_bad_requests_are_refused_and_closed(
    serve: Callable[..., WireServer], request_bytes: bytes, status_line: bytes
) -> None:
    server = serve(http=lambda request: Response(200), ws=echo)
    reply = call(raw_http, server.port, request_bytes)
    assert reply.split(b"\r\n")[0] == status_line
    assert b"\r\nConnection: close\r\n" in reply


def test_client_asking_close_gets_one_answer_then_eof(serve: Callable[..., WireServer]) -> None:
    server = serve(http=lambda request: Response(200, request.path.encode()))
    reply = call(raw_http, server.port, b"GET /one HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert reply == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\n/one"
    reply = call(raw_http, server.port, b"HEAD /two HTTP/1.0\r\n\r\n")
    assert reply == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"


# ---------------------------------------------------------------- WebSocket handshake and messages


def test_http_and_websocket_share_a_port_and_echo(serve: Callable[..., WireServer]) -> None:
    server = serve(http=lambda request: Response(200, b"rest"), ws=echo)
    client = ws_connect(server, "/stream?streams=ethbtc@depth@100ms/btcusdt@depth")
    conn = only_connection(server)
    assert conn.path == "/stream"
    assert conn.query == {"streams": "ethbtc@depth@100ms/btcusdt@depth"}
    assert conn.headers["upgrade"].lower() == "websocket"
    call(client.send, "hello")
    assert call(client.recv) == "hello"
    call(client.send_binary, b"caf\xc3\xa9")
    assert call(client.recv) == "café"
    assert call(lambda: requests.get(server.url() + "/api/v3/ping", timeout=5).text) == "rest"
    call(client.close)
    on_hub(lambda: not server.connections(), "every connection to end")


def test_upgrade_refused_without_handler_or_with_bad_version(serve: Callable[..., WireServer]) -> None:
    rest_only = serve(http=lambda request: Response(200))
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        ws_connect(rest_only)
    assert caught.value.status_code == 400

    server = serve(ws=echo)
    raw = call(RawClient, server.port, "/", "8")
    assert raw.head.startswith("HTTP/1.1 426 Upgrade Required\r\n")
    assert "\r\nSec-WebSocket-Version: 13" in raw.head
    assert not server.connections()


def test_fragmented_message_with_interleaved_ping(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=echo)
    client = ws_connect(server)

    def exchange() -> list[tuple[int, bytes]]:
        client.send_frame(ABNF.create_frame("frag", ABNF.OPCODE_TEXT, fin=0))
        client.send_frame(ABNF.create_frame(b"p1", ABNF.OPCODE_PING))
        client.send_frame(ABNF.create_frame("men", ABNF.OPCODE_CONT, fin=0))
        client.send_frame(ABNF.create_frame("ted", ABNF.OPCODE_CONT, fin=1))
        received = []
        for _ in range(2):
            opcode, frame = client.recv_data_frame(control_frame=True)
            received.append((opcode, frame.data))
        return received

    assert call(exchange) == [(OP_PONG, b"p1"), (OP_TEXT, b"fragmented")]


def test_client_ping_is_answered_with_its_payload(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle)
    client = ws_connect(server)

    def ping() -> tuple[int, bytes]:
        client.ping(b"are you there")
        opcode, frame = client.recv_data_frame(control_frame=True)
        return opcode, frame.data

    assert call(ping) == (OP_PONG, b"are you there")


def test_receive_timeout_raises_timeouterror(serve: Callable[..., WireServer]) -> None:
    outcomes: list[str] = []

    def handler(ws: WebSocket) -> None:
        try:
            ws.receive(timeout=0.1)
        except TimeoutError:
            outcomes.append("timeout")
        ws.send_text("after timeout")
        outcomes.append(str(ws.receive(timeout=5)))

    server = serve(ws=handler)
    client = ws_connect(server)
    assert call(client.recv) == "after timeout"
    call(client.send, "late")
    on_hub(lambda: len(outcomes) == 2, "both outcomes")
    assert outcomes == ["timeout", "late"]


def test_client_close_is_echoed_and_receive_returns_none(serve: Callable[..., WireServer]) -> None:
    results: list[str | None] = []

    def handler(ws: WebSocket) -> None:
        results.append(ws.receive())
        results.append(ws.receive())

    server = serve(ws=handler)
    client = ws_connect(server)
    call(client.send, "last words")

    def close() -> int:
        client.close(status=4001)
        frame = client.close_frame
        assert frame is not None and isinstance(frame.data, bytes)
        return struct.unpack("!H", frame.data[:2])[0]

    assert call(close) == 4001
    on_hub(lambda: len(results) == 2, "both results")
    assert results == ["last words", None]
    on_hub(lambda: not server.connections(), "every connection to end")


def test_handler_exception_closes_with_1011(serve: Callable[..., WireServer]) -> None:
    def handler(ws: WebSocket) -> None:
        raise RuntimeError("venue bug")

    server = serve(ws=handler)
    client = ws_connect(server)
    opcode, frame = call(client.recv_data_frame)
    assert opcode == OP_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1011


# ---------------------------------------------------------------- faults and limits


def test_server_pings_drop_a_client_that_never_pongs(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle, ping_interval=0.1, pong_timeout=0.3)
    raw = call(RawClient, server.port)
    started = time.monotonic()
    opcodes, ending = call(raw.frames_until_gone)
    assert time.monotonic() - started < 2
    assert opcodes and set(opcodes) == {OP_PING}
    assert ending is ConnectionResetError  # dropped without a close frame
    assert not server.connections()


def test_server_pings_keep_a_client_that_pongs(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle, ping_interval=0.1, pong_timeout=0.3)
    client = ws_connect(server)
    conn = only_connection(server)
    connected_at = conn.last_pong_at

    def listen(seconds: float) -> list[int]:
        client.settimeout(0.05)
        opcodes = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                opcodes.append(client.recv_data_frame(control_frame=True)[0])
            except websocket.WebSocketTimeoutException:
                pass
        return opcodes

    opcodes = call(listen, 1.0)
    assert opcodes.count(OP_PING) >= 5 and set(opcodes) == {OP_PING}
    assert server.connections() == [conn] and not conn.closed
    assert conn.last_pong_at > connected_at
    assert 0 < server.keepalive["pong_delay_max"] < 0.3 and server.keepalive["pong_timeouts"] == 0


def test_pings_and_pongs_go_out_ahead_of_data_frames_not_yet_written(serve: Callable[..., WireServer]) -> None:
    """Held data frames (a burst being queued) wait; a ping, and the pong to a client's ping, do not."""
    server = serve(ws=idle)
    client = ws_connect(server)
    conn = only_connection(server)
    conn.hold()
    for i in range(1000):
        conn.send_text(f"m{i}")
    conn.send_ping(b"keep")

    def next_frame() -> tuple[int, bytes]:
        opcode, frame = client.recv_data_frame(control_frame=True)
        return opcode, frame.data

    assert call(next_frame) == (OP_PING, b"keep")
    call(client.ping, b"hi")
    assert call(next_frame) == (OP_PONG, b"hi")
    assert conn.queued_bytes > 0  # the data still held
    conn.release()
    assert call(lambda: [client.recv() for _ in range(1000)]) == [f"m{i}" for i in range(1000)]


def test_a_ping_waits_only_for_what_the_kernel_already_holds(serve: Callable[..., WireServer]) -> None:
    """20 MB queued for a client that does not read: the socket's buffers fill, the rest waits in the queue; a ping
    queued then arrives right after the frames already written (to the kernel, or being written), not after the
    20 MB."""
    server = serve(ws=idle)
    client = ws_connect(server)
    conn = only_connection(server)
    frames = 20_000
    for i in range(frames):
        conn.send_text(f"{i:06d}" + "x" * 1018)  # 1,028 bytes a frame
    on_hub(lambda: conn.queued_bytes < frames * 1028, "the writer to fill the socket's buffers")
    gevent.sleep(0.2)  # and block there
    held = conn.queued_bytes
    conn.send_ping(b"now")

    def data_frames_before_the_ping() -> int:
        count = 0
        while (opcode := client.recv_data_frame(control_frame=True)[0]) != OP_PING:
            count += opcode == OP_TEXT
        return count

    written = frames - held // 1028  # in the kernel's buffers, or in the batch being written
    assert written < frames // 2  # most of the backlog was still queued when the ping was
    assert call(data_frames_before_the_ping) == written


def silenced_from_the_start(ws: WebSocket) -> None:
    """Silenced before its keep-alive can ping (the handler runs before any other greenlet, the first ping is due
    an interval later): a ping sent before the silence would reach the client whenever this machine lets it."""
    ws.silenced = True
    idle(ws)


def test_silenced_connection_sends_nothing_but_stays_open(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=silenced_from_the_start, ping_interval=0.05)
    client = ws_connect(server)
    conn = only_connection(server)
    assert conn.silenced
    conn.send_text("lost")
    conn.send_ping(b"lost too")

    def quiet_period() -> str:
        client.ping(b"hello?")
        client.settimeout(0.5)
        try:
            return repr(client.recv_data_frame(control_frame=True))
        except websocket.WebSocketTimeoutException:
            return "silence"

    assert call(quiet_period) == "silence"
    assert server.connections() == [conn] and not conn.closed
    conn.silenced = False
    conn.send_text("back")

    def first_data() -> tuple[int, bytes]:
        client.settimeout(5)
        while True:  # pings resume too; the first data frame must be the one sent after the silence
            opcode, frame = client.recv_data_frame(control_frame=True)
            if opcode != OP_PING:
                return opcode, frame.data

    assert call(first_data) == (OP_TEXT, b"back")


def test_abort_resets_without_close_frame(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle)
    raw = call(RawClient, server.port)
    conn = only_connection(server)
    conn.send_text("before")
    on_hub(lambda: conn.queued_bytes == 0, "the send queue to drain")
    conn.abort()
    opcodes, ending = call(raw.frames_until_gone)
    assert OP_CLOSE not in opcodes
    assert ending is ConnectionResetError
    assert conn.closed and not server.connections()

    client = ws_connect(server)
    server.connections()[0].abort()
    with pytest.raises((ConnectionResetError, websocket.WebSocketConnectionClosedException)):
        call(client.recv)


def test_close_sends_queued_frames_then_close_code(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle)
    client = ws_connect(server)
    conn = only_connection(server)
    for i in range(3):
        conn.send_text(f"m{i}")
    conn.close(4000, "bye")
    conn.send_text("after close: dropped")

    def read_all() -> list[tuple[int, bytes]]:
        frames = []
        while True:
            opcode, frame = client.recv_data_frame()
            frames.append((opcode, frame.data))
            if opcode == OP_CLOSE:
                return frames

    assert call(read_all) == [(OP_TEXT, b"m0"), (OP_TEXT, b"m1"), (OP_TEXT, b"m2"),
                              (OP_CLOSE, struct.pack("!H", 4000) + b"bye")]
    on_hub(lambda: not server.connections(), "every connection to end")


def test_close_all_and_stop(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle)
    clients = [ws_connect(server) for _ in range(3)]
    on_hub(lambda: len(server.connections()) == 3, "three connections")
    server.close_all(4002, "maintenance")
    codes = [struct.unpack("!H", call(c.recv_data_frame)[1].data[:2])[0] for c in clients]
    assert codes == [4002] * 3
    on_hub(lambda: not server.connections(), "every connection to end")

    late = ws_connect(server)
    only_connection(server)
    reading = background(late.recv_data_frame)
    started = time.monotonic()
    server.stop(timeout=1)
    assert time.monotonic() - started < 0.5  # the client answered the close: no waiting for the timeout
    opcode, frame = reading.get()
    assert opcode == OP_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1001
    with pytest.raises(ConnectionRefusedError):
        call(socket.create_connection, ("127.0.0.1", server.port), 2)


def test_slow_client_is_dropped(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle, max_queued_bytes=256 << 10)
    ws_connect(server)  # connected and never reading
    conn = only_connection(server)
    frame = encode_text_frame(b"x" * (64 << 10))
    for _ in range(4000):  # up to 256 MB offered: far beyond socket buffers plus the queue limit
        conn.send_frame(frame)
        if conn.closed:
            break
        assert conn.queued_bytes <= 256 << 10
        gevent.sleep(0)
    assert conn.closed
    on_hub(lambda: not server.connections(), "every connection to end")


def test_message_over_limit_closes_1009(serve: Callable[..., WireServer]) -> None:
    received: list[str | None] = []

    def handler(ws: WebSocket) -> None:
        while (message := ws.receive()) is not None:
            received.append(message)

    server = serve(ws=handler, max_message_bytes=1024)
    client = ws_connect(server)
    call(client.send, "a" * 1024)

    def oversized_in_fragments() -> None:
        client.send_frame(ABNF.create_frame("b" * 1000, ABNF.OPCODE_TEXT, fin=0))
        client.send_frame(ABNF.create_frame("b" * 1000, ABNF.OPCODE_CONT, fin=0))
        client.send_frame(ABNF.create_frame("b", ABNF.OPCODE_CONT, fin=1))

    call(oversized_in_fragments)
    started = time.monotonic()
    opcode, frame = call(client.recv_data_frame)  # answers the close frame
    assert opcode == OP_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1009
    on_hub(lambda: not server.connections(), "every connection to end")
    assert time.monotonic() - started < 1  # the client's answer was seen: no waiting for the close timeout
    assert received == ["a" * 1024]


def test_unmasked_client_frame_closes_1002(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=echo)
    raw = call(RawClient, server.port)
    call(raw.send_frame, OP_TEXT, b"naked", False)
    opcode, payload = call(raw.recv_frame)
    assert opcode == OP_CLOSE and struct.unpack("!H", payload[:2])[0] == 1002


def test_unread_flood_drops_the_client(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle, max_unread_messages=50)
    client = ws_connect(server)
    conn = only_connection(server)

    def flood(count: int) -> None:
        try:
            for i in range(count):
                client.send(f"spam {i}")
        except (ConnectionResetError, BrokenPipeError):
            pass  # dropped mid-flood: what this test wants

    call(flood, 50)
    on_hub(lambda: conn.unread_messages == 50 or conn.closed, "the 50 messages read in, unread")
    assert not conn.closed  # at the limit, not over it
    call(flood, 10)
    on_hub(lambda: conn.closed, "the connection to close")
    assert not server.connections()


def test_four_megabyte_frame_arrives_intact(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle)
    client = ws_connect(server)
    conn = only_connection(server)
    payload = b"".join(b"%09d," % i for i in range(420_000))  # 4.2 MB, every position distinct
    conn.send_frame(encode_text_frame(payload))
    assert call(lambda: client.recv_data_frame()[1].data) == payload


def test_twenty_thousand_frames_arrive_in_order(serve: Callable[..., WireServer]) -> None:
    server = serve(ws=idle)
    client = ws_connect(server)
    conn = only_connection(server)
    count = 20_000

    def push() -> None:
        for i in range(count):
            conn.send_frame(encode_text_frame(b'{"u":%d}' % i))
            if i % 1000 == 999:
                gevent.sleep(0)

    def read() -> list[str | bytes]:
        return [client.recv() for _ in range(count)]

    pusher = gevent.spawn(push)
    received = call(read)
    pusher.join()
    assert received == [f'{{"u":{i}}}' for i in range(count)]


PATCHED_PROCESS = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import gevent, requests, websocket
    from orderbook.simulator.wire import Response, WireServer

    def shout(ws):
        while (message := ws.receive()) is not None:
            ws.send_text(message.upper())

    server = WireServer(http=lambda r: Response.json({"a": r.query["a"]}), ws=shout, ping_interval=0.02)
    server.start()

    def client(i):
        assert requests.get(server.url() + f"/x?a={i}", timeout=5).json() == {"a": str(i)}
        conn = websocket.create_connection(server.url("ws") + "/", timeout=5)
        conn.send(f"hi {i}")
        gevent.sleep(0.1)  # server pings arrive meanwhile; websocket-client answers them inside recv()
        reply = conn.recv()
        conn.close()
        return reply

    jobs = [gevent.spawn(client, i) for i in range(5)]
    gevent.joinall(jobs, raise_error=True, timeout=10)
    server.stop()
    print([job.value for job in jobs])
""")


@pytest.mark.usefixtures("starts_processes")
def test_works_in_a_monkey_patched_process() -> None:
    """The product runs patched: server and blocking client libraries then share one hub, as greenlets."""
    done = subprocess.run([sys.executable, "-c", PATCHED_PROCESS], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([f"HI {i}" for i in range(5)])
