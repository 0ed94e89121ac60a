"""Following the venues: for each one, its connections, each symbol's book on them, and its REST side.

- :mod:`orderbook.feed.venue`: one venue: which symbols it lists, how they are spread over connections, the REST
  side they share (:mod:`orderbook.rest`), the drift audits taken in turn.
- :mod:`orderbook.feed.connection`: one connection's supervisor: connect, subscribe (paced), keep alive, read and
  route each frame to its symbol, retire by age make-before-break, back off after a failure.
- :mod:`orderbook.feed.symbol`: one symbol's book on one connection: buffer, snapshot, apply, rebuild on its own.

Two error boundaries: a bad frame is counted, logged (cut short) and skipped, unless it may have
carried a change we can no longer apply, in which case the book it belongs to is rebuilt; a broken connection
ends its session, every symbol on it is rebuilt, and the supervisor starts a new one after a backoff.
"""

from orderbook.feed.settings import FeedSettings
from orderbook.feed.venue import VenueFeed

__all__ = ["FeedSettings", "VenueFeed"]
