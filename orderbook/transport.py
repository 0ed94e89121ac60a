"""WebSocket connections to the exchanges (websocket-client), with a hard limit on the size of a frame.

websocket-client reads a frame's whole payload into memory once it has read the length from the header; the
limit is checked on that length, before the payload is read, so a multi-megabyte frame is refused without
being buffered.
"""

from __future__ import annotations

import websocket
from websocket._abnf import continuous_frame, frame_buffer


class FrameTooLarge(websocket.WebSocketProtocolException):
    pass


class _LimitedFrameBuffer(frame_buffer):
    def __init__(self, recv_fn, limit: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(recv_fn, skip_utf8_validation=True)
        self._limit = limit

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > self._limit:
            raise FrameTooLarge(f"a frame of {self.length} bytes is over the {self._limit}-byte limit")


class _LimitedMessage(continuous_frame):
    """Fragmented messages count against the same limit as a whole."""

    def __init__(self, limit: int) -> None:
        super().__init__(fire_cont_frame=False, skip_utf8_validation=True)
        self._limit = limit

    def add(self, frame) -> None:  # type: ignore[no-untyped-def]
        super().add(frame)
        if self.cont_data is not None and len(self.cont_data[1]) > self._limit:
            raise FrameTooLarge(f"a fragmented message is over the {self._limit}-byte limit")


def open_stream(url: str, *, connect_timeout: float, read_timeout: float, max_frame_bytes: int) -> websocket.WebSocket:
    """Connect; every later read waits at most ``read_timeout`` for bytes (the silence bound)."""
    ws = websocket.create_connection(url, timeout=connect_timeout, skip_utf8_validation=True, enable_multithread=True)
    ws.frame_buffer = _LimitedFrameBuffer(ws._recv, max_frame_bytes)  # noqa: SLF001 - the only hook there is
    ws.cont_frame = _LimitedMessage(max_frame_bytes)
    ws.settimeout(read_timeout)
    return ws
