"""The venues: each one's wire protocol, limits and sync rule in its own module, all pure (no I/O)."""

from orderbook.exchanges.base import Venue
from orderbook.exchanges.binance import BinanceVenue
from orderbook.exchanges.bitstamp import BitstampVenue

VENUES: tuple[type[Venue], ...] = (BinanceVenue, BitstampVenue)
"""Every venue the service follows, in the order their books are merged and reported."""
