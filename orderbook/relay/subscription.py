"""An edge's subscription to the relay's channel: a connection of its own, its messages read as RESP straight off
the socket.

redis-py's ``PubSub.get_message`` costs, per message, a health check, a retry wrapper, a poll of the socket
before the read (two ``settimeout`` calls), its buffer's seek/tell/purge, a dict per message, its observability
hooks, and in its RESP3 parser a ``getLogger`` under the logging lock and ``str()`` of the whole message (the
envelope's bytes ``repr``'d) for a debug line that is never shown: about 45 us a message over the ~65 us that a
gevent wait on a socket costs at all (measured on this project's 2-core machine, 300 messages a second). Here a
message costs one ``recv`` and a few slices.

The connection is redis-py's (its URL, TLS, password, timeouts and client name, its handshake), taken from the
client's pool and dropped after use, never returned subscribed. What Redis sends is its protocol, RESP2 or RESP3:
any reply the server could send is parsed whole (so nothing is misread after it); frames other than the channel's
messages are skipped; an error reply raises ``ResponseError``, a malformed one or a closed connection
``ConnectionError``, both ``RedisError`` s. The messages themselves are input (:mod:`orderbook.relay.envelope`).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import ResponseError

READ_SIZE = 65536
_MESSAGE = b"message"
_SUBSCRIBE = b"subscribe"
_LINE_TYPES = frozenset(b"+:_,#(")
_BULK_TYPES = frozenset(b"$=!")
_AGGREGATE_TYPES = frozenset(b"*>~")
_PAIRED_TYPES = frozenset(b"%|")


class _Incomplete(Exception):
    """The buffer ends inside a frame: read more."""


class Subscription:
    """``open()``, then ``next_message(timeout)`` until ``close()``."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._client = client
        self._channel = channel.encode()
        self._connection: Any = None
        self._socket: Any = None
        self._buffer = bytearray()
        self._position = 0

    def open(self, timeout: float) -> None:
        """Connect and subscribe; raises ``RedisError`` unless Redis confirms the subscription within
        ``timeout``."""
        self._connection = self._client.connection_pool.get_connection()
        self._connection.send_command("SUBSCRIBE", self._channel)
        self._socket = self._connection._sock  # read here from now on: the handshake's replies are all read
        self._socket.settimeout(timeout)
        while True:
            try:
                frame = self._frame()
            except TimeoutError:
                raise LostConnection("no subscription confirmed within the Redis timeout") from None
            if isinstance(frame, list) and len(frame) == 3 and frame[0] == _SUBSCRIBE and frame[1] == self._channel:
                return

    def next_message(self, timeout: float | None) -> bytes | None:
        """The next message on the channel, or None if none came within ``timeout`` (None: wait for one; gevent
        then needs no timer for each wait, which cost 17 us a message here)."""
        if timeout != self._socket.gettimeout():
            self._socket.settimeout(timeout)
        while True:
            try:
                frame = self._frame()
            except TimeoutError:
                return None
            if (isinstance(frame, list) and len(frame) == 3 and frame[0] == _MESSAGE and frame[1] == self._channel
                    and isinstance(frame[2], bytes)):
                return frame[2]

    def close(self) -> None:
        connection, self._connection, self._socket = self._connection, None, None
        self._buffer, self._position = bytearray(), 0
        if connection is not None:
            connection.disconnect()  # subscribed: never handed out again as it is
            self._client.connection_pool.release(connection)

    # -- RESP ----------------------------------------------------------------------------------------------------

    def _frame(self) -> Any:
        """The next whole frame, read from the socket as needed; raises ``TimeoutError`` if none is whole within
        the socket's timeout (what was read is kept for the next call)."""
        while True:
            start = self._position
            try:
                value = self._value()
            except _Incomplete:
                self._position = start
                self._fill()
                continue
            if self._position >= len(self._buffer):
                self._buffer.clear()
                self._position = 0
            if isinstance(value, ResponseError):
                raise value
            return value

    def _fill(self) -> None:
        try:
            data = self._socket.recv(READ_SIZE)
        except TimeoutError:
            raise
        except OSError as error:
            raise LostConnection(f"Error while reading from the subscription: {error}") from None
        if not data:
            raise LostConnection("Connection closed by server.")
        if self._position:
            del self._buffer[:self._position]  # what is read stays, appended to: a large message costs linear time
            self._position = 0
        self._buffer += data

    def _line(self) -> bytes:
        buffer, position = self._buffer, self._position
        end = buffer.find(b"\r\n", position)
        if end < 0:
            raise _Incomplete
        self._position = end + 2
        return bytes(buffer[position:end])

    def _value(self) -> Any:
        line = self._line()
        if not line:
            raise LostConnection("Protocol error: an empty line")
        kind, rest = line[0], line[1:]
        if kind in _BULK_TYPES:
            length = _count(rest)
            if length < 0:
                return None
            start, end = self._position, self._position + length
            if end + 2 > len(self._buffer):
                raise _Incomplete
            if self._buffer[end:end + 2] != b"\r\n":
                raise LostConnection("Protocol error: a bulk string not ended by CRLF")
            self._position = end + 2
            value = bytes(self._buffer[start:end])
            return ResponseError(value.decode(errors="replace")) if kind == ord("!") else value
        if kind in _AGGREGATE_TYPES or kind in _PAIRED_TYPES:
            count = _count(rest)
            if count < 0:
                return None
            items = [self._value() for _ in range(count * 2 if kind in _PAIRED_TYPES else count)]
            return self._value() if kind == ord("|") else items  # an attribute precedes the value it describes
        if kind == ord("-"):
            return ResponseError(rest.decode(errors="replace"))
        if kind in _LINE_TYPES:
            return rest
        raise LostConnection(f"Protocol error: {line[:40]!r}")


def _count(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise LostConnection(f"Protocol error: a length {text[:40]!r}") from None
