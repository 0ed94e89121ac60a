"""WebSocket (RFC 6455) messages as a client reads them from a server, from a buffered socket. Used only behind the
transport boundary (:mod:`orderbook.stream`); no I/O of its own but the ``recv`` it is given.

websocket-client reads a frame with two or three ``recv`` calls of exactly the bytes it needs next (the header, the
extended length, the payload), each through its own locks, validation and an ``ABNF`` object: about a third of what
parsing, syncing and booking the frame cost (``bin/bench --scenario transport`` measures both readers). Here the socket
is read in large chunks and frames are cut from the buffer: one ``recv`` serves the hundreds of frames a burst puts
on the socket. The frame limit is checked on the length in the header, before any of the payload is read, as
before: a frame announcing megabytes is refused without waiting for (or buffering) its payload.
"""

from __future__ import annotations

from collections.abc import Callable

RECV_BYTES = 64 << 10
"""Bytes asked of the socket per read (more when a frame still needs more: one read for the rest of it)."""

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_FIN, _RESERVED_BITS, _MASKED = 0x80, 0x70, 0x80
_MAX_CONTROL_PAYLOAD = 125


class FrameError(Exception):
    """What the server sent cannot be read on."""


class TooLarge(FrameError):
    """A frame, or a fragmented message, over the limit."""


class ProtocolError(FrameError):
    """Bytes that are not a server's WebSocket frames."""


class PeerClosed(FrameError):
    """The server sent a close frame, or closed the connection."""


class FrameReader:
    """Data messages (text or binary payloads, fragments joined) from a server's frames; answers pings with
    ``on_ping(payload)``, skips pongs. ``recv(n)`` is the socket's: at most ``n`` bytes, ``b""`` at its end; its
    exceptions (a timeout, a reset) pass through, and the bytes read before one are kept. ``ready()`` says whether
    the socket has bytes to read now (so that ``recv`` would not wait for them)."""

    __slots__ = ("_recv", "_ready", "_limit", "_on_ping", "_buffer", "_at")

    def __init__(self, recv: Callable[[int], bytes], ready: Callable[[], bool], limit: int,
                 on_ping: Callable[[bytes], None]) -> None:
        self._recv = recv
        self._ready = ready
        self._limit = limit
        self._on_ping = on_ping
        self._buffer = b""
        self._at = 0
        """Where the unread bytes of ``_buffer`` start."""

    def buffered(self) -> bool:
        """Whether bytes read from the socket are still unread here."""
        return self._at < len(self._buffer)

    def message(self) -> bytes:
        """The next data message's payload, waiting for it as long as the socket's timeout allows."""
        message = self._message(wait=True)
        assert message is not None  # a read that waits returns a message or raises
        return message

    def message_waiting(self) -> bytes | None:
        """The next data message's payload if its frame has already started arriving (the rest of it, and the rest
        of a fragmented message, are waited for: they are on their way); None when no data frame has, or when a
        control frame (a ping, answered; a pong) comes first. Never waits for a frame that has not started: a ping
        with nothing after it must not hold the caller until the venue sends again. A ping ends the caller's batch
        whatever follows it, so its pong tells the venue that every frame before it has been applied and will be
        published before the next is read (``bin/replay --lockstep`` waits for it)."""
        return self._message(wait=False)

    def _message(self, wait: bool) -> bytes | None:
        parts: list[bytes] | None = None
        size = 0
        while True:
            frame = self._frame(wait or parts is not None)
            if frame is None:
                return None
            first, payload = frame
            opcode = first & 0x0F
            if opcode >= _CLOSE:
                self._control(first, opcode, payload)
                if not wait and parts is None:
                    return None
            elif opcode == _CONTINUATION:
                if parts is None:
                    raise ProtocolError("a continuation frame with no message to continue")
                size += len(payload)
                if size > self._limit:
                    raise TooLarge(f"a fragmented message is over the {self._limit}-byte limit")
                parts.append(payload)
                if first & _FIN:
                    return b"".join(parts)
            elif opcode in (_TEXT, _BINARY):
                if parts is not None:
                    raise ProtocolError("a new message inside a fragmented one")
                if first & _FIN:
                    return payload
                parts, size = [payload], len(payload)
            else:
                raise ProtocolError(f"reserved opcode {opcode:#x}")

    def _control(self, first: int, opcode: int, payload: bytes) -> None:
        if not first & _FIN or len(payload) > _MAX_CONTROL_PAYLOAD:
            raise ProtocolError("a fragmented or over-long control frame")
        if opcode == _CLOSE:
            raise PeerClosed("closed by the venue")
        if opcode == _PING:
            self._on_ping(payload)
        elif opcode != _PONG:
            raise ProtocolError(f"reserved opcode {opcode:#x}")

    def _frame(self, wait: bool) -> tuple[int, bytes] | None:
        """The next frame's first byte (FIN, opcode) and payload; without ``wait``, None when no byte of it is here
        yet. Nothing is consumed until the whole frame is."""
        buffer, at = self._buffer, self._at
        available = len(buffer) - at
        if available < 2:
            if not (wait or available or self._ready()):
                return None
            buffer, at, available = self._fill(2)
        first, second = buffer[at], buffer[at + 1]
        if first & _RESERVED_BITS:
            raise ProtocolError("reserved bits set (no extension was negotiated)")
        if second & _MASKED:
            raise ProtocolError("a masked frame from the server")
        length, head = second & 0x7F, 2
        if length >= 126:
            head = 4 if length == 126 else 10
            if available < head:
                buffer, at, available = self._fill(head)
            length = int.from_bytes(buffer[at + 2:at + head], "big")
        if length > self._limit:
            raise TooLarge(f"a frame of {length} bytes is over the {self._limit}-byte limit")
        if available < head + length:
            buffer, at, available = self._fill(head + length)
        start = at + head
        self._at = end = start + length
        return first, buffer[start:end]

    def _fill(self, needed: int) -> tuple[bytes, int, int]:
        """Read until ``needed`` bytes are unread; returns the buffer, where they start (0) and how many there are.
        One join however many reads it takes, so a large frame costs no quadratic copying."""
        chunks = [self._buffer[self._at:]]
        available = len(chunks[0])
        try:
            while available < needed:
                data = self._recv(max(RECV_BYTES, needed - available))
                if not data:
                    raise PeerClosed("the venue closed the connection")
                chunks.append(data)
                available += len(data)
        finally:
            self._buffer, self._at = b"".join(chunks), 0
        return self._buffer, 0, available
