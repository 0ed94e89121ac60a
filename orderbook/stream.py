"""The transport boundary: what the feed sees of a connection to a venue.

A :class:`Stream` hands out frames and raises its own exceptions (:class:`StreamClosed`, :class:`StreamSilent`,
:class:`FrameTooLarge`), so the connection supervisor and everything behind it know nothing of the WebSocket
library; the tests drive them with an in-memory stream (``tests/support/fake_venue.py``) instead of a socket.
A :data:`Connector` opens one.

The one real implementation here opens the connection (the handshake, TLS) and sends with websocket-client, and
reads the frames itself (:mod:`orderbook.websocket_frames`): buffered, in large reads, with the frame limit checked
on the length in each header, before the payload is read, so a multi-megabyte frame is refused without being
buffered.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from collections.abc import Callable
from typing import Protocol, TypeVar

import websocket

from orderbook.websocket_frames import FrameReader, PeerClosed, ProtocolError, TooLarge


class StreamError(Exception):
    """The connection can no longer be used (or could not be opened)."""


class ConnectFailed(StreamError):
    pass


class StreamClosed(StreamError):
    pass


class StreamSilent(StreamError):
    """Nothing at all arrived within the read timeout (the silence bound)."""


class FrameTooLarge(StreamError):
    pass


class Stream(Protocol):
    def recv(self) -> str | bytes:
        """The next data frame's payload; raises a :class:`StreamError`."""

    def recv_waiting(self) -> str | bytes | None:
        """The next data frame's payload if it has started arriving, else None: never waits for a frame that has not;
        None too when a control frame comes first (it is handled: a ping ends a batch). Raises a
        :class:`StreamError`."""

    def waiting(self) -> bool:
        """Whether bytes already wait to be read (in the kernel's socket buffer or the TLS layer's): False means
        the next frame :meth:`recv` returns arrives after this call, fresh. Never blocks."""

    def send(self, text: str) -> None:
        """Send a text frame; raises :class:`StreamClosed`."""

    def ping(self) -> None:
        """Send a WebSocket ping; raises :class:`StreamClosed`."""

    def close(self) -> None:
        """Say goodbye without waiting for an answer; never raises."""


Connector = Callable[[str], Stream]
"""Opens a stream to a URL; raises :class:`ConnectFailed`."""


_Read = TypeVar("_Read", bytes, bytes | None)


class WebSocketStream:
    """A websocket-client connection behind the :class:`Stream` interface."""

    def __init__(self, ws: websocket.WebSocket, read_timeout: float, max_frame_bytes: int) -> None:
        self._ws = ws
        self._read_timeout = read_timeout
        sock = ws.sock
        if sock is None:
            raise ConnectFailed("no socket after the handshake")
        self._reader = FrameReader(sock.recv, self._socket_has_bytes, max_frame_bytes, ws.pong)

    def recv(self) -> str | bytes:
        return self._read(self._reader.message)

    def recv_waiting(self) -> str | bytes | None:
        return self._read(self._reader.message_waiting)

    def _read(self, read: Callable[[], _Read]) -> _Read:
        try:
            return read()
        except TimeoutError:
            raise StreamSilent(f"nothing received for {self._read_timeout:g} s") from None
        except TooLarge as error:
            raise FrameTooLarge(str(error)) from None
        except PeerClosed as error:
            raise StreamClosed(str(error)) from None
        except ProtocolError as error:
            raise StreamClosed(f"protocol error: {error}") from None
        except (OSError, websocket.WebSocketException) as error:  # the socket's, or a pong that could not be sent
            raise StreamClosed(str(error) or type(error).__name__) from None

    def waiting(self) -> bool:
        return self._reader.buffered() or self._socket_has_bytes()

    def _socket_has_bytes(self) -> bool:
        sock = self._ws.sock
        if sock is None:
            return False
        pending = getattr(sock, "pending", None)  # an SSLSocket: bytes decrypted but not read yet
        if pending is not None and pending():
            return True
        try:  # the kernel's receive buffer, without reading or blocking (no hub switch either)
            unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
        except (OSError, ValueError):
            return False
        return bool(unread)

    def send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except (OSError, websocket.WebSocketException) as error:
            raise StreamClosed(str(error) or type(error).__name__) from None

    def ping(self) -> None:
        try:
            self._ws.ping()
        except (OSError, websocket.WebSocketException) as error:
            raise StreamClosed(str(error) or type(error).__name__) from None

    def close(self) -> None:
        """Reading the reply could mean reading whatever the venue still has queued, a refused over-size frame
        included, or waiting on a connection that went silent: so no reply is awaited."""
        try:
            self._ws.send_close()
        except (OSError, websocket.WebSocketException):
            pass  # the connection is already gone
        self._ws.shutdown()


def websocket_connector(*, connect_timeout: float, read_timeout: float, max_frame_bytes: int) -> Connector:
    """Connections that wait at most ``read_timeout`` for bytes on each read (the silence bound)."""

    def connect(url: str) -> WebSocketStream:
        try:
            ws = websocket.create_connection(url, timeout=connect_timeout, skip_utf8_validation=True,
                                             enable_multithread=True)
        except (OSError, websocket.WebSocketException) as error:
            raise ConnectFailed(str(error) or type(error).__name__) from None
        ws.settimeout(read_timeout)
        return WebSocketStream(ws, read_timeout, max_frame_bytes)

    return connect
