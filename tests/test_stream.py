"""The WebSocket frame size limit, against a tiny raw TCP server that says whatever the test wants.

The server is plain ``socket`` + ``threading`` so that it can send a header announcing 8 MB and then nothing:
if the limit were checked only after reading the payload, the read would wait for bytes that never come.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from orderbook.stream import ConnectFailed, FrameTooLarge, Stream, StreamClosed, StreamSilent, websocket_connector

LIMIT = 1 << 20  # 1 MiB
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT = 0x0, 0x1


def frame_header(opcode: int, length: int, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return frame_header(opcode, len(payload), fin) + payload  # server frames are not masked


class ScriptedServer:
    """Accepts one client, completes the handshake, sends ``script``, then holds the connection open."""

    def __init__(self, script: bytes) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="scripted-ws", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/ethbtc@depth@100ms"

    def _serve(self) -> None:
        try:
            self.listener.settimeout(10)
            conn, _ = self.listener.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in request.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                conn.sendall(self.script)
                self.done.wait(10)
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            self.error = error

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[ScriptedServer] = []

    def start(script: bytes, read_timeout: float = 5) -> Stream:
        server = ScriptedServer(script)
        servers.append(server)
        return websocket_connector(connect_timeout=5, read_timeout=read_timeout, max_frame_bytes=LIMIT)(server.url)

    yield start
    for server in servers:
        server.close()
        assert server.error is None, server.error


def test_a_frame_announcing_8_mb_is_refused_from_its_header(serve):
    ws = serve(frame_header(OP_TEXT, 8 << 20))  # the header alone: the payload never comes
    started = time.monotonic()
    with pytest.raises(FrameTooLarge, match=str(8 << 20)):
        ws.recv()
    assert time.monotonic() - started < 2  # refused at once, not after the 5 s read timeout
    ws.close()


def test_a_frame_one_byte_over_the_limit_is_refused(serve):
    ws = serve(frame_header(OP_TEXT, LIMIT + 1))
    with pytest.raises(FrameTooLarge):
        ws.recv()
    ws.close()


def test_a_fragmented_message_over_the_limit_is_refused(serve):
    part = b"x" * (600 << 10)  # each fragment is under the limit, the message is not
    ws = serve(frame(OP_TEXT, part, fin=False) + frame(OP_CONT, part, fin=False) + frame(OP_CONT, b"y"))
    with pytest.raises(FrameTooLarge, match="fragmented"):
        ws.recv()
    ws.close()


def test_frames_under_the_limit_arrive_intact(serve):
    small = b'{"e":"depthUpdate","U":1,"u":2}'
    large = bytes(range(256)) * ((LIMIT - 1000) // 256)
    half = b"z" * (400 << 10)
    ws = serve(
        frame(OP_TEXT, small)
        + frame(OP_TEXT, large)
        + frame(OP_TEXT, b"", fin=False) + frame(OP_CONT, half, fin=False) + frame(OP_CONT, half)
        + frame(OP_TEXT, LIMIT * b"L")  # exactly at the limit is allowed
    )
    assert ws.recv() == small
    assert ws.recv() == large
    assert ws.recv() == half + half
    assert ws.recv() == LIMIT * b"L"
    ws.close()


def test_the_read_timeout_bounds_silence(serve):
    ws = serve(b"", read_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(StreamSilent):
        ws.recv()
    assert time.monotonic() - started < 2
    ws.close()


def test_a_close_frame_is_the_stream_closed(serve):
    ws = serve(frame(0x8, b"\x03\xe8bye"))
    with pytest.raises(StreamClosed):
        ws.recv()
    ws.close()


def test_a_refused_connection_is_connect_failed():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        url = f"ws://127.0.0.1:{unused.getsockname()[1]}/ws"
        with pytest.raises(ConnectFailed):
            websocket_connector(connect_timeout=5, read_timeout=5, max_frame_bytes=LIMIT)(url)
