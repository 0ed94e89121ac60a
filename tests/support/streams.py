"""Reading a served symbol's stream to its end, in the serving tests."""

from __future__ import annotations

from collections.abc import Iterable

from orderbook.serving.symbols import Unavailable


def read_all(stream: Iterable[bytes]) -> tuple[list[bytes], BaseException | None]:
    """Every payload of ``stream``, and the :class:`Unavailable` it ended with (None for a normal end)."""
    payloads: list[bytes] = []
    try:
        for payload in stream:
            payloads.append(payload)
    except Unavailable as error:
        return payloads, error
    return payloads, None
