"""The merged top as a serialized ``orderbook.Summary``.

Each published summary is encoded once and the same bytes go to every stream (the gRPC handler passes them
through untouched), so the per-client cost is only the send. Floats appear here and nowhere upstream.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from orderbook.merge import Level, MergedTop
from orderbook.prices import to_float
from orderbook.proto import orderbook_pb2

# The proto has no "absent" double: a summary with an empty side carries NaN as its spread (clients see null
# in the JSON client output). This is the documented meaning of NaN on the wire.
NO_SPREAD = math.nan


def _levels(levels: Iterable[Level]) -> list[orderbook_pb2.Level]:
    return [
        orderbook_pb2.Level(exchange=level.exchange, price=to_float(level.price), amount=to_float(level.amount))
        for level in levels
    ]


def encode_summary(top: MergedTop) -> bytes:
    """Serialize ``top``; the spread is NaN when either side is empty (``top.spread is None``)."""
    summary = orderbook_pb2.Summary(
        spread=NO_SPREAD if top.spread is None else to_float(top.spread),
        bids=_levels(top.bids),
        asks=_levels(top.asks),
    )
    return summary.SerializeToString()
