"""What a connector needs to know about one exchange: its URLs, its frames, its snapshot, its sync rules."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from orderbook.exchanges.messages import BadMessage, BookSnapshot, Message, parse_id, parse_levels
from orderbook.exchanges.sync import BookSync


class ExchangeError(Exception):
    """The exchange answered with an error that retrying cannot fix (an unknown symbol): a configuration error."""


class ErrorBody(Exception):
    """The venue answered with an error in the body, whatever the HTTP status (Bitstamp sends some with 200)."""

    def __init__(self, code: str, reason: str, *, rate_limited: bool) -> None:
        super().__init__(f"error {code}: {reason}")
        self.code = code
        self.rate_limited = rate_limited


class ExchangeProtocol(ABC):
    """One exchange's wire protocol for one trading pair. Pure: builds URLs and messages, parses what comes back."""

    name: str
    snapshot_id_field: str
    """The snapshot body's field that places it in the stream."""
    sync_class: type[BookSync]
    rest_limit: int
    """The venue's REST allowance a minute, in the unit of :attr:`snapshot_weight`."""
    used_weight_header: str | None = None
    """A response header in which the venue reports the allowance used this minute, if it has one."""
    status_meanings: dict[int, str] = {}
    """What the venue means by an HTTP status, for the log line."""
    quiet_snapshot_wait: float | None = None
    """If set: with no diff this long after the subscription is confirmed, fetch the snapshot anyway."""
    snapshot_depth: int | None = None
    """The most levels a side of a snapshot has; None: snapshots are the whole book."""
    snapshot_names_an_event = False
    """Whether a snapshot's id is that of an event the stream carries (Binance's lastUpdateId), so that the
    stream always reaches it; Bitstamp's microtimestamp can be later than every diff of a quiet pair."""

    def __init__(self, symbol: str, ws_url: str, rest_url: str) -> None:
        self.symbol = symbol.upper()
        self.ws_base = ws_url.rstrip("/")
        self.rest_base = rest_url.rstrip("/")

    @property
    @abstractmethod
    def stream_url(self) -> str: ...

    @property
    @abstractmethod
    def snapshot_url(self) -> str: ...

    def subscribe_messages(self) -> list[str]:
        """Frames to send once connected."""
        return []

    @property
    def snapshot_weight(self) -> int:
        """What one snapshot request costs of :attr:`rest_limit`."""
        return 1

    def confirms_subscription(self, message: Message) -> bool:
        """Whether ``message`` says the venue has taken our subscription (starts :attr:`quiet_snapshot_wait`)."""
        return False

    @abstractmethod
    def ready_for_snapshot(self, message: Message) -> bool:
        """Whether, once ``message`` has arrived, the snapshot can be asked for without a hole before it."""

    def heartbeat_message(self) -> str | None:
        """An application-level keep-alive whose reply proves the feed is alive; None: use WebSocket pings."""
        return None

    @abstractmethod
    def parse_message(self, raw: str | bytes) -> Message:
        """One WebSocket frame -> a typed message; raises :class:`BadMessage`."""

    def parse_snapshot(self, body: bytes) -> BookSnapshot:
        """A REST snapshot body -> a typed snapshot; raises :class:`BadMessage`."""
        snapshot = load_object(body, loses_data=True)
        self.check_error_body(snapshot)
        last_id = parse_id(snapshot.get(self.snapshot_id_field), self.snapshot_id_field)
        (bids, ignored_bids), (asks, ignored_asks) = parse_levels(snapshot.get("bids")), parse_levels(snapshot.get("asks"))
        return BookSnapshot(
            last_id,
            bids,
            asks,
            ignored_bids + ignored_asks,
        )

    def check_error_body(self, body: dict[str, Any]) -> None:
        """Raise :class:`ErrorBody` when a body that came with HTTP 200 is an error (the venue's own shape)."""

    @abstractmethod
    def snapshot_error(self, status: int, body: bytes) -> ExchangeError | None:
        """An error response that says the configuration is wrong (not worth retrying), else None."""

    def new_sync(self, watch_depth: int = 0) -> BookSync:
        """A fresh sync; ``watch_depth`` is how many best levels per side are served (see BookSync)."""
        return self.sync_class(watch_depth=watch_depth, snapshot_limit=self.snapshot_depth)


def load_json(raw: str | bytes, *, loses_data: bool) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise BadMessage("not_json", str(error), loses_data=loses_data) from None


def load_object(raw: str | bytes, *, loses_data: bool) -> dict[str, Any]:
    value = load_json(raw, loses_data=loses_data)
    if type(value) is not dict:
        raise BadMessage("unknown_shape", f"not an object: {raw!r:.80}", loses_data=loses_data)
    return value
