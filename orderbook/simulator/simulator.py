"""The simulator as one object: two venues, what drives them, their servers, and the control operations.

The control API (:mod:`orderbook.simulator.control`) and the command line are thin layers over this class; every
operation here validates its parameters and raises :class:`FaultError` on a request it cannot honour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orderbook.merge import Level, merge_top
from orderbook.prices import format_decimal
from orderbook.simulator import replay
from orderbook.simulator.binance import BinanceExchange
from orderbook.simulator.bitstamp import BitstampExchange
from orderbook.simulator.config import MAX_RATE, SimulatorConfig
from orderbook.simulator.exchange import Exchange
from orderbook.simulator.faults import DEFAULT_HUGE_BYTES, FaultError
from orderbook.simulator.feed import ModelFeed, Pause, ReplayFeed
from orderbook.simulator.market import ModelParams, VenueModel
from orderbook.simulator.probe import ProbeError, ProbeLog
from orderbook.simulator.reference import market_params
from orderbook.simulator.wire import WireServer
from orderbook.symbol_state import canonical_symbol

logger = logging.getLogger(__name__)

EXCHANGES = ("binance", "bitstamp")
DEFAULT_MERGED_DEPTH = 10
MAX_BURST_EVENTS = 1_000_000
"""Events in one ``POST /burst`` at most: a backlog of minutes at real rates, bounded so a typo cannot fill memory."""


@dataclass(frozen=True, slots=True)
class _Required:
    """A parameter with no default, of this type."""

    type: type


_REQUIRED = _Required(str)
"""A required string (an int is taken too and turned into its digits: ``{"status": 429}``)."""
_REQUIRED_FLOAT = _Required(float)


@dataclass(frozen=True, slots=True)
class _Fault:
    exchanges: tuple[str, ...]
    params: Mapping[str, Any]
    """Parameter name -> default (a ``_Required`` when there is none); the default's type is the expected type."""
    run: Callable[..., dict[str, object] | None]
    venue_wide: bool = False
    """Acts on the venue's connections or REST endpoint, whatever the symbol (takes no ``symbol``); otherwise on
    one symbol's market (``symbol``, default the default symbol)."""


_FAULTS: dict[str, _Fault] = {
    "drop": _Fault(EXCHANGES, {}, lambda ex: {"connections": ex.drop()}, venue_wide=True),
    "close": _Fault(EXCHANGES, {"code": 1000, "reason": ""},
                    lambda ex, code, reason: {"connections": ex.close(code, reason)}, venue_wide=True),
    "silence": _Fault(EXCHANGES, {"on": True}, lambda ex, on: {"connections": ex.silence(on), "on": on},
                      venue_wide=True),
    "rest": _Fault(EXCHANGES, {"status": _REQUIRED, "count": 1, "retry_after": 30},
                   lambda ex, status, count, retry_after: {"pending": ex.arm_rest(str(status), count, retry_after)},
                   venue_wide=True),
    "malformed": _Fault(EXCHANGES, {"kind": _REQUIRED, "size": DEFAULT_HUGE_BYTES},
                        lambda ex, kind, size: {"connections": ex.malformed(kind, size)}),
    "gap": _Fault(("binance",), {"events": 5}, lambda ex, events: ex.gap(events)),
    "stale_snapshot": _Fault(("binance",), {"count": 1},
                             lambda ex, count: {"last_update_id": ex.stale_snapshot(count)}),
    "server_shutdown": _Fault(("binance",), {"close_after": 1.0},
                              lambda ex, close_after: {"connections": ex.server_shutdown(close_after)},
                              venue_wide=True),
    "request_reconnect": _Fault(("bitstamp",), {"after": 3.0},
                                lambda ex, after: {"connections": ex.request_reconnect(after)}, venue_wide=True),
    "reorder": _Fault(("bitstamp",), {}, lambda ex: ex.reorder()),
    "rest_lag": _Fault(("bitstamp",), {"seconds": _REQUIRED_FLOAT},
                       lambda ex, seconds: {"lag": ex.rest_lag_fault(seconds)}),
    "junk_rows": _Fault(EXCHANGES, {"count": 1}, lambda ex, count: {"pending": ex.junk_rows(count)}),
    "lose_change": _Fault(EXCHANGES, {"side": "bid", "index": 2},
                          lambda ex, side, index: ex.lose_change(side, index)),
    "sweep": _Fault(EXCHANGES, {"side": "bid", "levels": 20}, lambda ex, side, levels: ex.sweep(side, levels)),
    "status": _Fault(EXCHANGES, {"status": _REQUIRED}, lambda ex, status: ex.set_status(status)),
    "listed": _Fault(EXCHANGES, {"on": True}, lambda ex, on: ex.set_listed(on)),
}
FAULT_NAMES = (*_FAULTS, "cross")


def signed_decimal(value: int) -> str:
    """A spread can be negative (crossed venues); format_decimal handles magnitudes only."""
    return ("-" if value < 0 else "") + format_decimal(abs(value))


def _level_json(level: Level) -> dict[str, str]:
    return {"exchange": level.exchange, "price": format_decimal(level.price), "amount": format_decimal(level.amount)}


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.pause_switch = Pause(config.paused)
        self.probes = ProbeLog(config.probe_every)
        binance_rec = (replay.load(config.replay_binance, "binance", config.recordings)
                       if config.replay_binance else None)
        bitstamp_rec = (replay.load(config.replay_bitstamp, "bitstamp", config.recordings)
                        if config.replay_bitstamp else None)
        # The default symbol keeps the seeds it always had ("<seed>:binance"...), so its events do not depend on the
        # other symbols; each other symbol's market is seeded from its name ("<seed>:binance:BTCUSDT").
        self.binance = BinanceExchange(binance_rec.symbol if binance_rec else config.symbol, seed=config.seed,
                                       snapshot_delay=config.snapshot_delay,
                                       weight_limit=config.binance_weight_limit,
                                       max_client_messages=config.binance_max_client_messages,
                                       max_connection_age=config.binance_max_connection_age,
                                       shutdown_notice=config.binance_shutdown_notice)
        self.bitstamp = BitstampExchange(bitstamp_rec.symbol if bitstamp_rec else config.pair,
                                         snapshot_delay=config.snapshot_delay, rest_lag=config.bitstamp_rest_lag,
                                         junk_rows=config.bitstamp_junk_rows, listing=config.bitstamp_listing)
        self.markets: dict[str, tuple[BinanceExchange | None, BitstampExchange | None]] = {
            config.symbol: (self.binance, self.bitstamp)}
        """Every symbol's market on each venue (None on a venue that does not serve it), the default first (a
        replay's market is filed under the default symbol). A symbol's market is the same whichever venues serve
        it: each is seeded from the venue and the symbol only."""
        for symbol in config.symbols[1:]:
            binance = bitstamp = None
            if symbol in config.binance_symbols:
                binance = BinanceExchange(symbol, seed=config.seed, ids_seed=f"{config.seed}:binance:{symbol}:ids",
                                          snapshot_delay=config.snapshot_delay)
                self.binance.add_market(binance)
            if symbol in config.bitstamp_symbols:
                bitstamp = BitstampExchange(symbol.lower(), snapshot_delay=config.snapshot_delay,
                                            rest_lag=config.bitstamp_rest_lag, junk_rows=config.bitstamp_junk_rows)
                self.bitstamp.add_market(bitstamp)
            self.markets[symbol] = (binance, bitstamp)
        self.feeds: dict[str, ModelFeed | ReplayFeed] = {
            "binance": self._feed(self.binance, binance_rec, config.binance_rate),
            "bitstamp": self._feed(self.bitstamp, bitstamp_rec, config.bitstamp_rate),
        }
        self.servers = {
            "binance": WireServer(config.host, config.binance_port, http=self.binance.handle_http,
                                  ws=self.binance.handle_ws, ping_interval=config.binance_ping_interval,
                                  pong_timeout=config.binance_pong_timeout, name="binance"),
            "bitstamp": WireServer(config.host, config.bitstamp_port, http=self.bitstamp.handle_http,
                                   ws=self.bitstamp.handle_ws, name="bitstamp"),
        }

    def _feed(self, exchange: Exchange, recording: replay.Recording | None, rate: float) -> ModelFeed | ReplayFeed:
        if recording is not None:
            exchange.load_recorded(recording.snapshot_id, recording.bids, recording.asks)
            return ReplayFeed(exchange, recording, self.config.replay_speed, self.pause_switch)
        seed, levels = self.config.seed, self.config.levels
        model = self._model(exchange, f"{seed}:{exchange.name}", market_params(self.config.symbol, levels, True))
        venue = EXCHANGES.index(exchange.name)
        others = []
        for symbol, markets in list(self.markets.items())[1:]:
            market = markets[venue]
            if market is None:
                continue
            params = market_params(symbol, levels)
            others.append((market, self._model(market, f"{seed}:{exchange.name}:{symbol}", params)))
        return ModelFeed(exchange, model, rate, self.pause_switch, self.probes, others, exchange.beat)

    @staticmethod
    def _model(exchange: Exchange, seed: str, params: ModelParams) -> VenueModel:
        model = VenueModel(seed, params)
        exchange.load(*model.levels())
        exchange.model = model
        return model

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
        for feed in self.feeds.values():
            feed.start()
        logger.info("simulator: binance %s (%s), bitstamp %s (%s), seed %s", self.servers["binance"].url(),
                    ",".join(self.binance.markets), self.servers["bitstamp"].url(), ",".join(self.bitstamp.markets),
                    self.config.seed)

    def stop(self) -> None:
        for feed in self.feeds.values():
            feed.stop()
        for server in self.servers.values():
            server.stop()

    def urls(self) -> dict[str, str]:
        binance, bitstamp = self.servers["binance"], self.servers["bitstamp"]
        return {"binance_ws": binance.url("ws"), "binance_rest": binance.url("http"),
                "bitstamp_ws": bitstamp.url("ws"), "bitstamp_rest": bitstamp.url("http")}

    def exchange(self, name: object) -> Exchange:
        if name == "binance":
            return self.binance
        if name == "bitstamp":
            return self.bitstamp
        raise FaultError(f"exchange must be one of {EXCHANGES}, got {name!r}")

    def market(self, name: object, symbol: object = None) -> Exchange:
        """One venue's market of ``symbol`` (any case; None: the default symbol); FaultError when that venue does
        not serve it."""
        venue = self.exchange(name)
        if symbol is None:
            return venue
        served = self.symbol(symbol)
        market = self.markets[served][EXCHANGES.index(venue.name)]
        if market is None:
            raise FaultError(f"{venue.name} does not list {served}: it is served on "
                             f"{self._venues_of(served)} only")
        return market

    def _venues_of(self, symbol: str) -> str:
        return " and ".join(name for name, market in zip(EXCHANGES, self.markets[symbol]) if market is not None)

    def listed(self) -> dict[str, list[str]]:
        """The symbols each venue lists (and serves), the default first."""
        return {name: [symbol for symbol, markets in self.markets.items() if markets[index] is not None]
                for index, name in enumerate(EXCHANGES)}

    def symbol(self, symbol: object) -> str:
        """A served symbol, upper case (None: the default); FaultError for any other."""
        if symbol is None:
            return self.config.symbol
        if isinstance(symbol, str) and canonical_symbol(symbol) in self.markets:
            return canonical_symbol(symbol)
        served = ", ".join(list(self.markets)[:10]) + (" ..." if len(self.markets) > 10 else "")
        raise FaultError(f"symbol must be one of the symbols served ({served}), got {symbol!r}")

    # -- control -----------------------------------------------------------------------------------------

    def pause(self) -> None:
        self.pause_switch.pause()

    def resume(self) -> None:
        self.pause_switch.resume()

    def set_rate(self, rates: Mapping[str, object]) -> dict[str, float]:
        for name, rate in rates.items():
            feed = self.feeds.get(name)
            if feed is None:
                raise FaultError(f"exchange must be one of {EXCHANGES}, got {name!r}")
            if not isinstance(feed, ModelFeed):
                raise FaultError(f"{name} is replaying a recording: it has no rate")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= MAX_RATE:
                raise FaultError(f"rate must be a number in (0, {MAX_RATE:g}], got {rate!r}")
        for name, rate in rates.items():
            self.feeds[name].rate = float(rate)  # type: ignore[arg-type]
        return {name: feed.rate for name, feed in self.feeds.items()}

    def burst(self, params: Mapping[str, object]) -> dict[str, object]:
        """``events`` model events of one venue's default symbol, all queued to its subscribers at once, the last a
        probe (:meth:`ModelFeed.burst`): the backlog a stalled reader or a busy market leaves on a socket. Only while
        paused, so that the burst is all the traffic and the true book stays where the burst left it. Returns when
        the frames were queued (``queued_at``, this host's time.monotonic()): their writing starts then."""
        if set(params) - {"exchange", "events"}:
            raise FaultError(f"burst takes exchange and events, got {sorted(params)}")
        name, events = params.get("exchange"), params.get("events")
        feed = self.feeds.get(name) if isinstance(name, str) else None
        if feed is None:
            raise FaultError(f"exchange must be one of {EXCHANGES}, got {name!r}")
        if not isinstance(feed, ModelFeed):
            raise FaultError(f"{name} is replaying a recording: it has no model to step")
        if isinstance(events, bool) or not isinstance(events, int) or not 1 <= events <= MAX_BURST_EVENTS:
            raise FaultError(f"events must be a whole number in [1, {MAX_BURST_EVENTS}], got {events!r}")
        if not self.pause_switch.paused:
            raise FaultError("pause the market first (POST /pause): a burst is the only traffic")
        return {"exchange": name, "events": events, "queued_at": feed.burst(events)}

    def set_probe(self, every: object) -> dict[str, int]:
        """Make every ``every``-th model event of each venue a latency probe (0: none)."""
        try:
            self.probes.set_every(every)  # type: ignore[arg-type]
        except ProbeError as error:
            raise FaultError(str(error)) from None
        return {"every": self.probes.every}

    def probes_sent(self, since: int = 0) -> dict[str, object]:
        """Probes sent with a key above ``since``: ``[key, exchange, monotonic send time, monotonic queued time]``
        each, oldest first (:meth:`ProbeLog.sent`)."""
        return {"every": self.probes.every, "probes": [list(record) for record in self.probes.sent(since)]}

    def truth(self, depth: int | None = None, symbol: object = None) -> dict[str, object]:
        """Each venue's true book of ``symbol`` (default: the default symbol; full, or ``depth`` levels) and the
        true merged top ``depth`` (default 10). A venue that does not serve the symbol has ``null`` for its book
        and no levels in the merged top."""
        if depth is not None and depth < 1:
            raise FaultError("depth must be >= 1")
        merged_depth = depth or DEFAULT_MERGED_DEPTH
        served = self.symbol(symbol)
        binance, bitstamp = self.markets[served]
        books = {name: market.truth for name, market in (("binance", binance), ("bitstamp", bitstamp))
                 if market is not None}
        top = merge_top({name: book.top_bids(merged_depth) for name, book in books.items()},
                        {name: book.top_asks(merged_depth) for name, book in books.items()}, merged_depth)
        return {
            "symbol": binance.symbol if binance is not None else served,
            "binance": ({**binance.truth_json(depth), "last_update_id": binance.last_update_id}
                        if binance is not None else None),
            "bitstamp": ({**bitstamp.truth_json(depth), "microtimestamp": str(bitstamp.microtimestamp)}
                         if bitstamp is not None else None),
            "merged": {"spread": signed_decimal(top.spread) if top.spread is not None else None,
                       "bids": [_level_json(level) for level in top.bids],
                       "asks": [_level_json(level) for level in top.asks]},
            "paused": self.pause_switch.paused,
        }

    def stats(self) -> dict[str, object]:
        return {
            "paused": self.pause_switch.paused,
            **{name: {**self.exchange(name).stats(), **self.servers[name].keepalive, "rate": feed.rate,
                      "source": "replay" if isinstance(feed, ReplayFeed) else "model",
                      "markets": {symbol: market.market_stats()
                                  for symbol, markets in self.markets.items()
                                  if (market := markets[index]) is not None}}
               for index, (name, feed) in enumerate(self.feeds.items())},
            "symbols": list(self.markets),
            "listed": self.listed(),
        }

    def cross(self, symbol: object = None) -> dict[str, object]:
        """Make the venues cross now on ``symbol`` (default: the default symbol): one venue quotes through the
        other's best price."""
        served = self.symbol(symbol)
        binance, bitstamp = self.markets[served]
        if binance is None or bitstamp is None:
            raise FaultError(f"cross needs both venues: {served} is served on {self._venues_of(served)} only")
        aggressor: Exchange
        if binance.model is not None and bitstamp.truth.ask_depth:
            aggressor, change = binance, binance.model.cross_above(bitstamp.truth.top_asks(1)[0][0])
        elif bitstamp.model is not None and binance.truth.bid_depth:
            aggressor, change = bitstamp, bitstamp.model.cross_below(binance.truth.top_bids(1)[0][0])
        else:
            raise FaultError("cross needs a model-driven venue facing a non-empty book")
        aggressor.count_fault("cross")
        aggressor.publish(change)
        spread = self.truth(1, symbol)["merged"]["spread"]  # type: ignore[index]
        answer = {"aggressor": aggressor.name, "spread": spread}
        return {**answer, "symbol": binance.symbol} if symbol is not None else answer

    def inject(self, name: str, params: Mapping[str, object]) -> dict[str, object]:
        """Run the fault ``name`` with JSON parameters; unknown names and parameters are refused."""
        if name == "cross":
            if set(params) - {"exchange", "symbol"}:
                raise FaultError(f"cross takes no parameters but symbol, got {sorted(params)}")
            return self.cross(params.get("symbol"))
        fault = _FAULTS.get(name)
        if fault is None:
            raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        unknown = set(params) - set(fault.params) - {"exchange", "symbol"}
        if unknown:
            raise FaultError(f"{name}: unknown parameters {sorted(unknown)}")
        if fault.venue_wide and "symbol" in params:
            raise FaultError(f"{name} acts on the whole venue (its connections or REST endpoint), not on one "
                             "symbol: it takes no symbol")
        exchange_name = params.get("exchange", fault.exchanges[0] if len(fault.exchanges) == 1 else None)
        if exchange_name not in fault.exchanges:
            raise FaultError(f"{name}: exchange must be one of {fault.exchanges}, got {exchange_name!r}")
        symbol = params.get("symbol")
        market = self.market(exchange_name, symbol)
        kwargs = {key: _param(name, key, params.get(key, default), default) for key, default in fault.params.items()}
        result = fault.run(market, **kwargs)
        answer: dict[str, object] = {"fault": name, "exchange": exchange_name, **(result or {})}
        return {**answer, "symbol": self.symbol(symbol)} if symbol is not None else answer


def _param(fault: str, key: str, value: object, default: object) -> object:
    if isinstance(value, _Required):
        raise FaultError(f"{fault}: parameter {key!r} is required")
    if default is _REQUIRED:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise FaultError(f"{fault}: {key} must be a string")
        return str(value)
    expected = default.type if isinstance(default, _Required) else type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not expected:
        raise FaultError(f"{fault}: {key} must be {expected.__name__}, got {value!r}")
    return value
