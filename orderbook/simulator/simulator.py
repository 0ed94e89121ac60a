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
from orderbook.simulator.wire import WireServer

logger = logging.getLogger(__name__)

EXCHANGES = ("binance", "bitstamp")
DEFAULT_MERGED_DEPTH = 10


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
    run: Callable[..., object]


_FAULTS: dict[str, _Fault] = {
    "drop": _Fault(EXCHANGES, {}, lambda ex: {"connections": ex.drop()}),
    "close": _Fault(EXCHANGES, {"code": 1000, "reason": ""},
                    lambda ex, code, reason: {"connections": ex.close(code, reason)}),
    "silence": _Fault(EXCHANGES, {"on": True}, lambda ex, on: {"connections": ex.silence(on), "on": on}),
    "rest": _Fault(EXCHANGES, {"status": _REQUIRED, "count": 1, "retry_after": 30},
                   lambda ex, status, count, retry_after: {"pending": ex.arm_rest(str(status), count, retry_after)}),
    "malformed": _Fault(EXCHANGES, {"kind": _REQUIRED, "size": DEFAULT_HUGE_BYTES},
                        lambda ex, kind, size: {"connections": ex.malformed(kind, size)}),
    "gap": _Fault(("binance",), {"events": 5}, lambda ex, events: ex.gap(events)),
    "stale_snapshot": _Fault(("binance",), {"count": 1},
                             lambda ex, count: {"last_update_id": ex.stale_snapshot(count)}),
    "server_shutdown": _Fault(("binance",), {"close_after": 1.0},
                              lambda ex, close_after: {"connections": ex.server_shutdown(close_after)}),
    "request_reconnect": _Fault(("bitstamp",), {"after": 3.0},
                                lambda ex, after: {"connections": ex.request_reconnect(after)}),
    "reorder": _Fault(("bitstamp",), {}, lambda ex: ex.reorder()),
    "rest_lag": _Fault(("bitstamp",), {"seconds": _REQUIRED_FLOAT},
                       lambda ex, seconds: {"lag": ex.rest_lag_fault(seconds)}),
    "junk_rows": _Fault(EXCHANGES, {"count": 1}, lambda ex, count: {"pending": ex.junk_rows(count)}),
    "lose_change": _Fault(EXCHANGES, {"side": "bid", "index": 2},
                          lambda ex, side, index: ex.lose_change(side, index)),
    "sweep": _Fault(EXCHANGES, {"side": "bid", "levels": 20}, lambda ex, side, levels: ex.sweep(side, levels)),
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
        binance_rec = replay.load(config.replay_binance, "binance", config.recordings) if config.replay_binance else None
        bitstamp_rec = (replay.load(config.replay_bitstamp, "bitstamp", config.recordings)
                        if config.replay_bitstamp else None)
        self.binance = BinanceExchange(binance_rec.symbol if binance_rec else config.symbol, seed=config.seed,
                                       snapshot_delay=config.snapshot_delay,
                                       weight_limit=config.binance_weight_limit,
                                       max_client_messages=config.binance_max_client_messages,
                                       max_connection_age=config.binance_max_connection_age,
                                       shutdown_notice=config.binance_shutdown_notice)
        self.bitstamp = BitstampExchange(bitstamp_rec.symbol if bitstamp_rec else config.pair,
                                         snapshot_delay=config.snapshot_delay, rest_lag=config.bitstamp_rest_lag,
                                         junk_rows=config.bitstamp_junk_rows)
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
        model = VenueModel(f"{self.config.seed}:{exchange.name}", ModelParams.with_levels(self.config.levels))
        exchange.load(*model.levels())
        exchange.model = model
        return ModelFeed(exchange, model, rate, self.pause_switch, self.probes)

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
        for feed in self.feeds.values():
            feed.start()
        logger.info("simulator: binance %s (%s), bitstamp %s (%s), seed %s", self.servers["binance"].url(),
                    self.binance.symbol, self.servers["bitstamp"].url(), self.bitstamp.pair, self.config.seed)

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

    def set_probe(self, every: object) -> dict[str, int]:
        """Make every ``every``-th model event of each venue a latency probe (0: none)."""
        try:
            self.probes.set_every(every)  # type: ignore[arg-type]
        except ProbeError as error:
            raise FaultError(str(error)) from None
        return {"every": self.probes.every}

    def probes_sent(self, since: int = 0) -> dict[str, object]:
        """Probes sent with a key above ``since``: ``[key, exchange, monotonic send time]`` each, oldest first."""
        return {"every": self.probes.every, "probes": [list(record) for record in self.probes.sent(since)]}

    def truth(self, depth: int | None = None) -> dict[str, object]:
        """Each venue's true book (full, or ``depth`` levels) and the true merged top ``depth`` (default 10)."""
        if depth is not None and depth < 1:
            raise FaultError("depth must be >= 1")
        merged_depth = depth or DEFAULT_MERGED_DEPTH
        books = {"binance": self.binance.truth, "bitstamp": self.bitstamp.truth}
        top = merge_top({name: book.top_bids(merged_depth) for name, book in books.items()},
                        {name: book.top_asks(merged_depth) for name, book in books.items()}, merged_depth)
        return {
            "binance": {**self.binance.truth_json(depth), "last_update_id": self.binance.last_update_id},
            "bitstamp": {**self.bitstamp.truth_json(depth), "microtimestamp": str(self.bitstamp.microtimestamp)},
            "merged": {"spread": signed_decimal(top.spread) if top.spread is not None else None,
                       "bids": [_level_json(level) for level in top.bids],
                       "asks": [_level_json(level) for level in top.asks]},
            "paused": self.pause_switch.paused,
        }

    def stats(self) -> dict[str, object]:
        return {
            "paused": self.pause_switch.paused,
            **{name: {**self.exchange(name).stats(), "rate": feed.rate,
                      "source": "replay" if isinstance(feed, ReplayFeed) else "model"}
               for name, feed in self.feeds.items()},
        }

    def cross(self) -> dict[str, object]:
        """Make the venues cross now: one venue quotes through the other's best price."""
        binance_feed, bitstamp_feed = self.feeds["binance"], self.feeds["bitstamp"]
        if isinstance(binance_feed, ModelFeed) and self.bitstamp.truth.ask_depth:
            aggressor, change = self.binance, binance_feed.model.cross_above(self.bitstamp.truth.top_asks(1)[0][0])
        elif isinstance(bitstamp_feed, ModelFeed) and self.binance.truth.bid_depth:
            aggressor, change = self.bitstamp, bitstamp_feed.model.cross_below(self.binance.truth.top_bids(1)[0][0])
        else:
            raise FaultError("cross needs a model-driven venue facing a non-empty book")
        aggressor.count_fault("cross")
        aggressor.publish(change)
        return {"aggressor": aggressor.name, "spread": self.truth(1)["merged"]["spread"]}  # type: ignore[index]

    def inject(self, name: str, params: Mapping[str, object]) -> dict[str, object]:
        """Run the fault ``name`` with JSON parameters; unknown names and parameters are refused."""
        if name == "cross":
            if set(params) - {"exchange"}:
                raise FaultError(f"cross takes no parameters, got {sorted(params)}")
            return self.cross()
        fault = _FAULTS.get(name)
        if fault is None:
            raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        unknown = set(params) - set(fault.params) - {"exchange"}
        if unknown:
            raise FaultError(f"{name}: unknown parameters {sorted(unknown)}")
        exchange_name = params.get("exchange", fault.exchanges[0] if len(fault.exchanges) == 1 else None)
        if exchange_name not in fault.exchanges:
            raise FaultError(f"{name}: exchange must be one of {fault.exchanges}, got {exchange_name!r}")
        kwargs = {key: _param(name, key, params.get(key, default), default) for key, default in fault.params.items()}
        result = fault.run(self.exchange(exchange_name), **kwargs)
        return {"fault": name, "exchange": exchange_name, **(result or {})}  # type: ignore[dict-item]


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
