"""HTTP/1.1 and WebSocket (RFC 6455) server for the exchange simulator, on gevent, on one port.

Hand-rolled rather than a library because the simulator must misbehave in ways no library allows: reset a
connection without a close frame, go silent with the socket open, ignore pings, send multi-megabyte frames, hold
an HTTP request unanswered. It must also push tens of thousands of frames per second to several clients, and
Binance serves REST and WebSocket on the same port.

Each connection has its own greenlet (the HTTP loop, then the venue's WebSocket handler). An upgraded connection
adds a reader greenlet, which always reads the socket so pings and close frames are answered even when the
handler never calls ``receive()``, and a writer greenlet, which drains a queue of encoded frames in batches so
``send_*`` never blocks the caller. Pings and pongs have a queue of their own, which the writer empties first: a
control frame goes out between data frames (RFC 6455 section 5.4), ahead of every data frame not yet written, as
a server's keep-alive does; only the batch being written and what the kernel already holds are ahead of it. All of
it is cooperative gevent code: it works in a monkey-patched process and in an unpatched one, provided every call
is made from the thread that runs the gevent hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

import gevent
from gevent import socket
from gevent.event import Event
from gevent.pool import Pool
from gevent.queue import Empty, Queue
from gevent.server import StreamServer

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 << 10
MAX_BODY_BYTES = 1 << 20
RECV_BYTES = 64 << 10
# Frames queued together are joined into one buffer per write, up to this size: fewer syscalls at high rates,
# without copying a whole backlog at once.
WRITE_BATCH_BYTES = 256 << 10
# How long a closing handshake may wait for the peer's close frame before the socket is closed anyway.
CLOSE_TIMEOUT = 2.0

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed HTTP request, as a venue's REST handler sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    remote: tuple[str, int]


@dataclass(slots=True)
class Response:
    """What a REST handler answers; Content-Length and Connection are added by the server."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """Compact JSON, as the exchanges send it."""
        return cls(
            status,
            json.dumps(obj, separators=(",", ":")).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


HttpHandler = Callable[[Request], Response | None]
WsHandler = Callable[["WebSocket"], None]


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def encode_text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame: encode once and hand the same bytes to every client."""
    return _frame(_OP_TEXT, payload)


def encode_ping_frame(payload: bytes) -> bytes:
    """A ping to send in order with the data frames (:meth:`WebSocket.send_frame`), not ahead of them as
    :meth:`WebSocket.send_ping` sends it: its pong says the client has read every frame before it."""
    return _frame(_OP_PING, payload[:125])


def _close_frame(code: int, reason: str) -> bytes:
    return _frame(_OP_CLOSE, struct.pack("!H", code) + reason.encode()[:123])


def _unmask(mask: bytes, data: bytes) -> bytes:
    # XOR through big integers runs in C; a Python loop over bytes would cost ~100 ns per byte.
    n = len(data)
    if not n:
        return data
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class _Eof(ConnectionError):
    """The peer closed its side of the connection."""


class _HttpError(Exception):
    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class _ProtocolError(Exception):
    """The client broke RFC 6455: fail the connection with this close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Buffered:
    """Reads from a socket through a buffer shared by the HTTP and the WebSocket phases of a connection."""

    __slots__ = ("_sock", "_buf")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def _fill(self) -> None:
        data = self._sock.recv(RECV_BYTES)
        if not data:
            raise _Eof("connection closed by peer")
        self._buf += data

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def skip(self, n: int) -> None:
        while n > len(self._buf):
            n -= len(self._buf)
            self._buf.clear()
            self._fill()
        del self._buf[:n]

    def read_head(self, limit: int) -> bytes:
        """Bytes up to the blank line that ends an HTTP head (the blank line is consumed)."""
        searched = 0
        while True:
            end = self._buf.find(b"\r\n\r\n", max(0, searched - 3))
            if end > limit or (end < 0 and len(self._buf) > limit):
                raise _HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
            if end >= 0:
                head = bytes(self._buf[:end])
                del self._buf[: end + 4]
                return head
            searched = len(self._buf)
            self._fill()

    def close_gently(self, seconds: float) -> None:
        """Half-close, then drop what the client still sends for a while.

        Closing with unread input makes the kernel reset the connection, which can destroy the error answer just
        sent before the client reads it.
        """
        try:
            self._sock.shutdown(socket.SHUT_WR)
            # Timeout(seconds, False) is gevent's documented silent timeout, which types-gevent's stub leaves out.
            with gevent.Timeout(seconds, False):  # type: ignore[arg-type]
                self.discard_until_eof()
        except OSError:
            pass  # the client is gone: nothing left to protect

    def discard_until_eof(self) -> NoReturn:
        """Read and drop everything until the peer closes (raises _Eof then) or the socket is closed."""
        while True:
            self._buf.clear()
            self._fill()


@dataclass(frozen=True, slots=True)
class _Limits:
    name: str
    max_message_bytes: int
    max_queued_bytes: int
    max_unread_messages: int
    ping_interval: float | None
    pong_timeout: float | None
    keepalive: dict[str, float]
    """Shared by the server's connections: ``pong_delay_max`` (seconds from a ping to the pong that answered it, the
    worst seen) and ``pong_timeouts`` (connections dropped for a late pong)."""


class WebSocket:
    """One upgraded connection, as a venue's handler sees it. Every method must be called from the hub's thread."""

    def __init__(
        self,
        sock: socket.socket,
        reader: _Buffered,
        request: Request,
        limits: _Limits,
        on_finished: Callable[[WebSocket], None],
    ) -> None:
        self.path = request.path
        self.query = request.query
        self.headers = request.headers
        self.remote = request.remote
        self.silenced = False
        self.closed = False
        self.last_pong_at = time.monotonic()
        self.on_control_frame: Callable[[str], object] | None = None
        """Called with ``"ping"`` or ``"pong"`` for each such frame the client sends, before it is answered: a
        venue that counts every incoming frame against a rate limit (Binance) hooks in here. Messages go to
        ``receive()`` as usual."""
        self._sock = sock
        self._reader = reader
        self._limits = limits
        self._on_finished = on_finished
        self._out: deque[bytes] = deque()
        self._control: deque[bytes] = deque()
        """Pings and pongs, written ahead of the data frames in ``_out``."""
        self._holds = 0
        """Callers of :meth:`hold` not yet released: data frames wait meanwhile."""
        self._ping_pending_since: float | None = None
        """When the oldest keep-alive ping no pong has answered yet was queued."""
        self._queued = 0
        self._data_queued = 0
        """Data frames queued since the connection opened (written or not)."""
        self._data_written = 0
        self._on_written: deque[tuple[int, Callable[[float], None]]] = deque()
        """(the data frame's number, called with its write time): see :meth:`send_frame`."""
        self._wake = Event()
        self._finished = Event()
        self._inbox: Queue[str | None] = Queue()
        self._close_frame: bytes | None = None
        self._close_sent = False
        self._peer_closed = False
        self._dead = False

    def __repr__(self) -> str:
        return f"<WebSocket {self.path} from {self.remote[0]}:{self.remote[1]}>"

    @property
    def queued_bytes(self) -> int:
        return self._queued

    @property
    def unread_messages(self) -> int:
        """Messages received from the client and not yet taken by :meth:`receive` (the flood limit counts these)."""
        return self._inbox.qsize()

    def send_text(self, data: str | bytes) -> None:
        self.send_frame(encode_text_frame(data.encode() if isinstance(data, str) else data))

    def send_frame(self, frame: bytes, on_written: Callable[[float], None] | None = None) -> None:
        """Queue a data frame; ``on_written``, if given, is called once the frame has been written, with
        ``time.monotonic()`` taken just before the write that carried it (never, if the connection ends first)."""
        if not self.silenced:
            self._enqueue(frame)
            if on_written is not None and not self.closed:
                self._on_written.append((self._data_queued, on_written))

    def send_ping(self, payload: bytes = b"") -> None:
        if not self.silenced:
            self._enqueue(_frame(_OP_PING, payload[:125]), control=True)

    def hold(self) -> None:
        """Queue data frames without writing them until :meth:`release` (control frames still go out): a backlog
        built over several turns of the hub reaches the socket as if it had been queued at once."""
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1
        self._wake.set()

    def receive(self, timeout: float | None = None) -> str | None:
        """The next message from the client, or None once the connection is closed.

        Raises TimeoutError when ``timeout`` seconds pass without a message.
        """
        try:
            message = self._inbox.get(timeout=timeout)
        except Empty:
            raise TimeoutError(f"no message within {timeout} s") from None
        if message is None:
            self._inbox.put(None)  # every later call sees the end too
        return message

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send what is queued, then a close frame; the socket closes when the client answers (or after a delay).

        Sent even while silenced: closing is an explicit act of the venue, silence only mutes the data flow.
        """
        if self.closed:
            return
        self.closed = True
        self._close_frame = _close_frame(code, reason)
        self._wake.set()

    def abort(self) -> None:
        """Drop the connection at once: the client sees a TCP reset and no close frame."""
        if self._dead:
            return
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass  # already gone: closing is all that is left to do
        self._finish()

    def _start(self) -> None:
        gevent.spawn(self._read_loop)
        gevent.spawn(self._write_loop)
        if self._limits.ping_interval:
            gevent.spawn(self._keepalive_loop, self._limits.ping_interval, self._limits.pong_timeout)

    def _enqueue(self, frame: bytes, control: bool = False) -> None:
        if self.closed:
            return
        (self._control if control else self._out).append(frame)
        self._queued += len(frame)
        if not control:
            self._data_queued += 1
        if self._queued > self._limits.max_queued_bytes:
            logger.info("%s: dropping slow client %s with %d bytes queued", self._limits.name, self, self._queued)
            self.abort()
            return
        self._wake.set()

    def _write_loop(self) -> None:
        out, control = self._out, self._control
        try:
            while not self._dead:
                data = bool(out) and (not self._holds or self._close_frame is not None)
                if not control and not data:
                    if self._close_frame is not None and not out:
                        break
                    self._wake.clear()
                    self._wake.wait()
                    continue
                batch = list(control)
                control.clear()
                size = sum(map(len, batch))
                frames = 0
                while data and out and size < WRITE_BATCH_BYTES:
                    batch.append(out.popleft())
                    size += len(batch[-1])
                    frames += 1
                self._queued -= size
                handed_at = time.monotonic()  # before the write: a client on another core may read it at once
                self._sock.sendall(batch[0] if len(batch) == 1 else b"".join(batch))
                self._data_written += frames
                self._report_written(handed_at)
            if self._dead or self._close_frame is None:
                return
            self._sock.sendall(self._close_frame)
            self._close_sent = True
            if not self._peer_closed:
                # Half-close and let the reader collect the client's close frame: closing with unread data
                # would reset the connection and could destroy the close frame before the client reads it.
                self._sock.shutdown(socket.SHUT_WR)
                self._finished.wait(CLOSE_TIMEOUT)
        except OSError:
            pass  # the peer is gone; nothing left to deliver
        finally:
            self._finish()

    def _read_loop(self) -> None:
        try:
            try:
                self._read_frames()
            except _ProtocolError as exc:
                logger.debug("%s: %s broke the protocol: %s", self._limits.name, self, exc.reason)
                self.close(exc.code, exc.reason)
            if self._close_sent:
                return  # closing handshake complete
            self._reader.discard_until_eof()
        except OSError:
            pass  # peer closed or reset, or the socket was closed locally
        finally:
            if not self._close_frame or self._close_sent:
                self._finish()

    def _read_frames(self) -> None:  # noqa: C901
        """Process client frames until a close frame arrives."""
        read = self._reader.read_exact
        limit = self._limits.max_message_bytes
        parts: list[bytes] = []
        size = 0
        message_opcode = 0
        while not self._dead:
            b0, b1 = read(2)
            fin, opcode, length = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if b0 & 0x70:
                raise _ProtocolError(1002, "reserved bits set")
            if not b1 & 0x80:
                raise _ProtocolError(1002, "client frames must be masked")
            if length == 126:
                (length,) = struct.unpack("!H", read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", read(8))
            if opcode >= _OP_CLOSE:
                if opcode > _OP_PONG:
                    raise _ProtocolError(1002, f"unknown opcode {opcode}")
                if not fin or length > 125:
                    raise _ProtocolError(1002, "bad control frame")
            elif opcode == _OP_CONT:
                if not message_opcode:
                    raise _ProtocolError(1002, "continuation without a message")
            elif opcode in (_OP_TEXT, _OP_BINARY):
                if message_opcode:
                    raise _ProtocolError(1002, "new message inside a fragmented one")
                message_opcode = opcode
            else:
                raise _ProtocolError(1002, f"unknown opcode {opcode}")
            mask = read(4)
            if opcode < _OP_CLOSE and size + length > limit:
                # Skip the payload rather than stop parsing, so the client's answer to our close is still seen.
                logger.debug("%s: %s sent a message over %d bytes", self._limits.name, self, limit)
                self.close(1009, f"message over {limit} bytes")
                self._reader.skip(length)
                parts, size = [], 0  # later fragments of this message are read and dropped (we are closing)
                if fin:
                    message_opcode = 0
                continue
            payload = _unmask(mask, read(length))

            if opcode == _OP_CLOSE:
                self._on_peer_close(payload)
                return
            if opcode == _OP_PING:
                if self.on_control_frame is not None:
                    self.on_control_frame("ping")
                if not self.silenced:
                    # Dropped if the hook closed the connection.
                    self._enqueue(_frame(_OP_PONG, payload), control=True)
                continue
            if opcode == _OP_PONG:
                self._on_pong()
                if self.on_control_frame is not None:
                    self.on_control_frame("pong")
                continue
            parts.append(payload)
            size += length
            if fin:
                data = b"".join(parts)
                is_text = message_opcode == _OP_TEXT
                parts, size, message_opcode = [], 0, 0
                self._deliver(data, is_text)

    def _deliver(self, data: bytes, is_text: bool) -> None:
        if self.closed:
            return
        if is_text:
            try:
                message = data.decode()
            except UnicodeDecodeError:
                raise _ProtocolError(1007, "text message is not UTF-8") from None
        else:
            message = data.decode(errors="replace")
        if self._inbox.qsize() >= self._limits.max_unread_messages:
            logger.info("%s: dropping %s: more than %d unread messages", self._limits.name, self,
                        self._limits.max_unread_messages)
            self.abort()
            return
        self._inbox.put(message)

    def _on_peer_close(self, payload: bytes) -> None:
        if len(payload) == 1:
            raise _ProtocolError(1002, "close frame with a one-byte payload")
        self._peer_closed = True
        if self._close_frame is not None:
            return  # our own close is sent or about to be: this is the answer
        self.closed = True
        self._inbox.put(None)
        if not self.silenced:  # a silent server does not even answer a close
            self._close_frame = _frame(_OP_CLOSE, payload[:2])
            self._wake.set()

    def _on_pong(self) -> None:
        """Any pong answers every ping sent before it, whatever its payload: Binance's stream endpoint is reported
        not to check it (docs/protocols.md). The delay is taken as the pong is read, from the oldest ping it answers."""
        self.last_pong_at = now = time.monotonic()
        if self._ping_pending_since is not None:
            stats = self._limits.keepalive
            stats["pong_delay_max"] = max(stats["pong_delay_max"], now - self._ping_pending_since)
            self._ping_pending_since = None

    def _keepalive_loop(self, interval: float, pong_timeout: float | None) -> None:
        """Ping every ``interval``; drop the client if a ping stays unanswered for ``pong_timeout``. Pings go ahead
        of the data frames not yet written (:meth:`_enqueue`), so a client that reads on answers them in time."""
        next_ping = time.monotonic() + interval
        while not self.closed:
            now = time.monotonic()
            pending_since = self._ping_pending_since
            deadline = None if pending_since is None or pong_timeout is None else pending_since + pong_timeout
            if deadline is not None and now >= deadline:
                logger.info("%s: dropping %s: no pong within %.1f s", self._limits.name, self, pong_timeout)
                self._limits.keepalive["pong_timeouts"] += 1
                self.abort()
                return
            if now >= next_ping:
                if not self.silenced:
                    self.send_ping()
                    if pending_since is None:
                        self._ping_pending_since = now
                next_ping = now + interval
                continue
            wake_at = next_ping if deadline is None else min(next_ping, deadline)
            if self._finished.wait(wake_at - now):
                return

    def _report_written(self, handed_at: float) -> None:
        waiting = self._on_written
        while waiting and waiting[0][0] <= self._data_written:
            waiting.popleft()[1](handed_at)

    def _finish(self) -> None:
        if self._dead:
            return
        self._dead = True
        self.closed = True
        self._out.clear()
        self._control.clear()
        self._on_written.clear()
        self._queued = 0
        self._inbox.put(None)
        self._wake.set()
        try:
            self._sock.close()
        except OSError:
            pass  # nothing to release
        self._finished.set()
        self._on_finished(self)


class WireServer:
    """One listening port that answers HTTP requests and upgrades WebSocket connections."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        http: HttpHandler | None = None,
        ws: WsHandler | None = None,
        ping_interval: float | None = None,
        pong_timeout: float | None = None,
        max_message_bytes: int = 1 << 20,
        max_queued_bytes: int = 64 << 20,
        max_unread_messages: int = 1000,
        name: str = "wire",
    ) -> None:
        self._host = host
        self._port = port
        self._http = http
        self._ws = ws
        self.keepalive: dict[str, float] = {"pong_delay_max": 0.0, "pong_timeouts": 0}
        self._limits = _Limits(name, max_message_bytes, max_queued_bytes, max_unread_messages,
                               ping_interval, pong_timeout, self.keepalive)
        self._name = name
        self._server: StreamServer | None = None
        self._pool = Pool()
        self._websockets: dict[WebSocket, None] = {}  # insertion-ordered set
        self._plain: set[socket.socket] = set()  # connections not (yet) upgraded

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    def url(self, scheme: str = "http") -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"{self._name}: already started")
        self._server = StreamServer((self._host, self._port), self._handle, spawn=self._pool)
        self._server.start()
        port = self._server.server_port
        assert port is not None  # listening
        self._port = port
        logger.debug("%s: listening on %s", self._name, self.url())

    def stop(self, timeout: float = 1.0) -> None:
        """Stop listening; close every WebSocket cleanly (1001) within ``timeout``, then drop what remains."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        self.close_all(1001, "server stopping")
        for sock in list(self._plain):
            _reset(sock)
        if self._websockets:
            gevent.wait([ws._finished for ws in list(self._websockets)], timeout=timeout)
        self.abort_all()
        self._pool.join(timeout=timeout)
        self._pool.kill(block=True, timeout=timeout)
        logger.debug("%s: stopped", self._name)

    def connections(self) -> list[WebSocket]:
        return list(self._websockets)

    def abort_all(self) -> None:
        for ws in list(self._websockets):
            ws.abort()
        for sock in list(self._plain):
            _reset(sock)

    def close_all(self, code: int = 1000, reason: str = "") -> None:
        for ws in list(self._websockets):
            ws.close(code, reason)

    def _handle(self, sock: socket.socket, address: tuple[Any, ...]) -> None:
        remote = (str(address[0]), int(address[1]))
        logger.debug("%s: connection from %s:%s", self._name, *remote)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (or already gone): latency is then not our concern
        self._plain.add(sock)
        try:
            ws = self._serve_http(sock, remote)
        except OSError:
            ws = None  # client went away or the connection was dropped on purpose
        finally:
            self._plain.discard(sock)
        if ws is not None:
            self._run_websocket(ws)
        logger.debug("%s: connection from %s:%s ended", self._name, *remote)

    def _serve_http(self, sock: socket.socket, remote: tuple[str, int]) -> WebSocket | None:
        """Answer requests until the connection closes or is upgraded (then return the WebSocket)."""
        reader = _Buffered(sock)
        while True:
            try:
                head = reader.read_head(MAX_HEADER_BYTES)
                request, keep_alive = _parse_request(head, reader, remote)
            except _Eof:
                return None  # an idle keep-alive connection closed by the client: normal
            except _HttpError as exc:
                logger.debug("%s: bad request from %s:%s: %s", self._name, *remote, exc)
                sock.sendall(_render(Response(exc.status, str(exc).encode()), keep_alive=False, with_body=True))
                reader.close_gently(CLOSE_TIMEOUT)
                return None
            if "websocket" in request.headers.get("upgrade", "").lower():
                return self._upgrade(sock, reader, request)
            response = self._respond(request)
            if response is None:
                reader.discard_until_eof()  # 'never answers': hold the connection until someone closes it
            if any(k.lower() == "connection" and v.lower() == "close" for k, v in response.headers.items()):
                keep_alive = False  # the handler asked for the connection to end after this answer
            sock.sendall(_render(response, keep_alive, with_body=request.method != "HEAD"))
            if not keep_alive:
                return None

    def _respond(self, request: Request) -> Response | None:
        if self._http is None:
            return Response(HTTPStatus.NOT_FOUND, b"no HTTP here")
        try:
            return self._http(request)
        except Exception:
            logger.exception("%s: HTTP handler failed on %s %s", self._name, request.method, request.path)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error")

    def _upgrade(self, sock: socket.socket, reader: _Buffered, request: Request) -> WebSocket | None:
        refusal = self._check_upgrade(request)
        if refusal is not None:
            sock.sendall(_render(refusal, keep_alive=False, with_body=True))
            reader.close_gently(CLOSE_TIMEOUT)
            return None
        digest = hashlib.sha1(request.headers["sec-websocket-key"].encode() + _WS_GUID).digest()
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n"
        )
        ws = WebSocket(sock, reader, request, self._limits, self._forget)
        self._websockets[ws] = None
        return ws

    def _check_upgrade(self, request: Request) -> Response | None:
        headers = request.headers
        if self._ws is None:
            return Response(HTTPStatus.BAD_REQUEST, b"no WebSocket here")
        if request.method != "GET" or "upgrade" not in _tokens(headers.get("connection", "")):
            return Response(HTTPStatus.BAD_REQUEST, b"bad WebSocket upgrade")
        try:
            key_ok = len(base64.b64decode(headers.get("sec-websocket-key", ""), validate=True)) == 16
        except ValueError:
            key_ok = False
        if not key_ok:
            return Response(HTTPStatus.BAD_REQUEST, b"bad Sec-WebSocket-Key")
        if headers.get("sec-websocket-version") != "13":
            return Response(
                HTTPStatus.UPGRADE_REQUIRED, b"WebSocket version 13 only", {"Sec-WebSocket-Version": "13"}
            )
        return None

    def _run_websocket(self, ws: WebSocket) -> None:
        """Run the venue's handler in this greenlet; the connection closes when it returns."""
        assert self._ws is not None
        logger.debug("%s: %s upgraded", self._name, ws)
        ws._start()
        try:
            try:
                self._ws(ws)
            except Exception:
                logger.exception("%s: WebSocket handler failed for %s", self._name, ws)
                ws.close(1011, "internal error")
            else:
                ws.close()
            ws._finished.wait()
        finally:
            ws.abort()  # no-op after a normal end; drops the connection if this greenlet is killed

    def _forget(self, ws: WebSocket) -> None:
        self._websockets.pop(ws, None)
        logger.debug("%s: %s closed", self._name, ws)


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
    except OSError:
        pass  # already closed


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def _parse_request(head: bytes, reader: _Buffered, remote: tuple[str, int]) -> tuple[Request, bool]:
    """Parse a request head and read its body; also tell whether the connection may be kept alive."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise _HttpError(HTTPStatus.BAD_REQUEST, "bad request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _HttpError(HTTPStatus.BAD_REQUEST, "bad header line")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "transfer-encoding" in headers:
        raise _HttpError(HTTPStatus.NOT_IMPLEMENTED, "only Content-Length bodies are supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
    if length < 0:
        raise _HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
    if length > MAX_BODY_BYTES:
        raise _HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
    body = reader.read_exact(length) if length else b""
    split = urlsplit(target)
    query: dict[str, str] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query.setdefault(key, value)
    connection = _tokens(headers.get("connection", ""))
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    return Request(method, unquote(split.path), query, headers, body, remote), keep_alive


def _render(response: Response, keep_alive: bool, with_body: bool) -> bytes:
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    lines = [
        f"HTTP/1.1 {response.status} {phrase}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    lines += [f"{k}: {v}" for k, v in response.headers.items()
             if k.lower() not in ("content-length", "connection")]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + response.body if with_body else head
