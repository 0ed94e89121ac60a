"""A moment as the replay commands take it (``--at``, ``--from``, ``--to``): ISO 8601 (``2026-12-03T14:03:07.250Z``;
without a zone, UTC) or Unix seconds with decimals (``1796306587.25``); kept as ns since the epoch, the recording's
unit, exactly as typed."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

NS = 1_000_000_000


def parse_moment(text: str) -> int:
    """``text`` -> ns since the epoch; raises :class:`argparse.ArgumentTypeError` saying what is expected."""
    stripped = text.strip()
    try:
        seconds = Decimal(stripped)
    except InvalidOperation:
        pass
    else:
        if seconds.is_finite() and seconds >= 0:
            return int(seconds * NS)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected ISO 8601 (2026-12-03T14:03:07.250Z) or Unix seconds (1796306587.25), got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000


def format_moment(ns: int) -> str:
    """ns since the epoch -> ISO 8601 in UTC, to the millisecond (``2026-12-03T14:03:07.250Z``)."""
    moment = datetime.fromtimestamp(ns // NS, UTC).replace(microsecond=(ns % NS) // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
