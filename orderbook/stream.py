"""The transport boundary: what the feed sees of a connection to a venue.

A :class:`Stream` hands out frames and raises its own exceptions (:class:`StreamClosed`, :class:`StreamSilent`,
:class:`FrameTooLarge`), so the connection supervisor and everything behind it know nothing of the WebSocket
library; the tests drive them with an in-memory stream (``tests/support/fake_venue.py``) instead of a socket.
A :data:`Connector` opens one.

The one real implementation here uses websocket-client. websocket-client reads a frame's whole payload into memory
once it has read the length from the header; the limit is checked on that length, before the payload is read, so
a multi-megabyte frame is refused without being buffered.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from collections.abc import Callable
from typing import Protocol

import websocket
from websocket._abnf import continuous_frame, frame_buffer


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


class _LimitedFrameBuffer(frame_buffer):
    def __init__(self, recv_fn: Callable[[int], bytes], limit: int) -> None:
        super().__init__(recv_fn, skip_utf8_validation=True)
        self._limit = limit

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > self._limit:
            raise _TooLarge(f"a frame of {self.length} bytes is over the {self._limit}-byte limit")


class _LimitedMessage(continuous_frame):
    """Fragmented messages count against the same limit as a whole."""

    def __init__(self, limit: int) -> None:
        super().__init__(fire_cont_frame=False, skip_utf8_validation=True)
        self._limit = limit

    def add(self, frame: websocket.ABNF) -> None:
        super().add(frame)
        if self.cont_data is not None and len(self.cont_data[1]) > self._limit:
            raise _TooLarge(f"a fragmented message is over the {self._limit}-byte limit")


class _TooLarge(websocket.WebSocketProtocolException):
    """Raised inside websocket-client's frame reader; :class:`WebSocketStream` turns it into FrameTooLarge."""


class WebSocketStream:
    """A websocket-client connection behind the :class:`Stream` interface."""

    def __init__(self, ws: websocket.WebSocket, read_timeout: float) -> None:
        self._ws = ws
        self._read_timeout = read_timeout

    def recv(self) -> str | bytes:
        try:
            opcode, payload = self._ws.recv_data()
        except websocket.WebSocketTimeoutException:
            raise StreamSilent(f"nothing received for {self._read_timeout:g} s") from None
        except _TooLarge as error:
            raise FrameTooLarge(str(error)) from None
        except (OSError, websocket.WebSocketException) as error:
            raise StreamClosed(str(error) or type(error).__name__) from None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise StreamClosed("closed by the venue")
        return payload

    def waiting(self) -> bool:
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
        ws.frame_buffer = _LimitedFrameBuffer(ws._recv, max_frame_bytes)  # a private attribute: the only hook there is
        ws.cont_frame = _LimitedMessage(max_frame_bytes)
        ws.settimeout(read_timeout)
        return WebSocketStream(ws, read_timeout)

    return connect
