"""The simulator's configuration: one frozen, validated object built from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from orderbook.arguments import OneLineParser, number, one_of, whole_number
from orderbook.simulator.listing import split_symbol
from orderbook.symbol_state import SYMBOL, canonical_symbol

BITSTAMP_LISTINGS = ("both", "markets", "trading-pairs-info")

MAX_RATE = 100_000.0
"""Events per second per exchange (for each symbol); the benchmark needs at least 20,000."""

MAX_SYMBOLS = 1024
"""Symbols per run at most: Binance lets one connection listen to 1,024 streams, so one client can follow them all."""

MAX_REST_LAG = 60.0
"""Seconds: real Bitstamp's REST book lags its stream by 0.07 to 2.6 s in the recordings; a minute is plenty."""

DEFAULT_RECORDINGS = Path(__file__).resolve().parents[2] / "recordings"
"""The repository's ``recordings/``, where the recorded data sets live."""


class ConfigError(ValueError):
    """A setting that cannot work; reported at start-up, before any port is opened."""


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    binance_port: int = 0
    bitstamp_port: int = 0
    control_port: int = 0
    seed: int = 1
    binance_rate: float = 50.0
    bitstamp_rate: float = 50.0
    symbol: str = "ETHBTC"
    """The default symbol: the one the service under test follows, the one the control API means by default."""
    extra_symbols: tuple[str, ...] = ()
    """More symbols served on both venues, each an independent seeded market (``--symbol A,B,C``: B and C)."""
    binance_only_symbols: tuple[str, ...] = ()
    """Symbols served (and listed) by Binance only: Bitstamp treats them as any pair it does not list."""
    bitstamp_only_symbols: tuple[str, ...] = ()
    """Symbols served (and listed) by Bitstamp only, as the pair of the same letters in lower case; Binance treats
    them as any symbol it does not list."""
    levels: int = 300
    snapshot_delay: float = 0.0
    binance_ping_interval: float = 20.0
    binance_pong_timeout: float = 60.0
    binance_weight_limit: int = 6000
    binance_max_client_messages: int = 5
    """Messages per second a client may send on one Binance connection (PING, PONG and JSON frames all count);
    one more and the connection is closed (1008). Binance docs, "WebSocket Limits": 5."""
    binance_max_connection_age: float = 86400.0
    """Seconds a Binance connection lives before the simulator closes it cleanly. Binance: "A single connection to
    stream.binance.com is only valid for 24 hours; expect to be disconnected at the 24 hour mark"."""
    binance_shutdown_notice: float = 0.0
    """When > 0, ``serverShutdown`` is sent this many seconds before the age cut (Binance sends it some time before
    it closes a connection); 0: the cut comes unannounced."""
    bitstamp_rest_lag: float = 0.0
    """Seconds by which Bitstamp's REST book lags its stream: the snapshot is the book as it was then, with that
    moment's microtimestamp (0.07 to 2.6 s in the recordings, see docs/protocols.md); 0: the current book."""
    bitstamp_junk_rows: bool = False
    bitstamp_listing: str = "both"
    """Which listing endpoints Bitstamp answers: ``both``, ``markets`` (``GET /api/v2/markets/`` only: the old one
    retired, 404) or ``trading-pairs-info`` (the old one only, as before 2026: the new one 404)."""
    """Every Bitstamp REST snapshot's bids end with a price-0 row, then ``null``: both seen from the real venue
    (gocryptotrader ``filterOrderbookZeroBidPrice``; ccxt issue 13043). The true book holds neither."""
    replay_binance: str | None = None
    replay_bitstamp: str | None = None
    replay_speed: str = "recorded"
    recordings: Path = DEFAULT_RECORDINGS
    paused: bool = False
    probe_every: int = 0
    """Every Nth event of each venue is a latency probe (see :mod:`orderbook.simulator.probe`); 0: none."""

    def __post_init__(self) -> None:  # noqa: C901
        for name in ("binance_rate", "bitstamp_rate"):
            rate = getattr(self, name)
            if not 0 < rate <= MAX_RATE:
                raise ConfigError(f"{name} must be in (0, {MAX_RATE:g}], got {rate}")
        for name in ("binance_port", "bitstamp_port", "control_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"{name} out of range")
        for symbol in self.symbols:
            try:
                split_symbol(symbol)
            except ValueError as error:
                raise ConfigError(str(error)) from None
            if not SYMBOL.fullmatch(symbol) or symbol != canonical_symbol(symbol):
                raise ConfigError(f"symbol must be upper-case letters and digits (letters of any script: those "
                                  f"without case as they are), 2 to 20, got {symbol!r}")
        for symbol in self.bitstamp_symbols:
            if not (symbol.isascii() and symbol.isalnum()):
                raise ConfigError(f"Bitstamp's pairs are ASCII letters and digits: it cannot list {symbol!r} (serve "
                                  "it with --binance-only-symbol)")
        if len(set(self.symbols)) != len(self.symbols):
            raise ConfigError(f"symbol listed twice in {','.join(self.symbols)} (a symbol is served on both venues, "
                              "on Binance only or on Bitstamp only)")
        for venue, symbols in (("binance", self.binance_symbols), ("bitstamp", self.bitstamp_symbols)):
            if len(symbols) > MAX_SYMBOLS:
                raise ConfigError(f"at most {MAX_SYMBOLS} symbols per venue, got {len(symbols)} on {venue}")
        if len(self.symbols) > 1 and (self.replay_binance or self.replay_bitstamp):
            raise ConfigError("a replay serves one recorded symbol: --replay-binance/--replay-bitstamp cannot be "
                              f"combined with several symbols ({','.join(self.symbols)})")
        if not 2 <= self.levels <= 5000:
            raise ConfigError(f"levels must be in [2, 5000], got {self.levels}")
        if self.snapshot_delay < 0:
            raise ConfigError("snapshot_delay must be >= 0")
        if self.binance_ping_interval <= 0 or self.binance_pong_timeout <= 0:
            raise ConfigError("ping interval and pong timeout must be > 0")
        if self.binance_weight_limit < 1:
            raise ConfigError("binance_weight_limit must be >= 1")
        if self.binance_max_client_messages < 1:
            raise ConfigError(f"binance_max_client_messages must be >= 1, got {self.binance_max_client_messages}")
        if self.binance_max_connection_age <= 0:
            raise ConfigError(f"binance_max_connection_age must be > 0, got {self.binance_max_connection_age}")
        if not 0 <= self.binance_shutdown_notice < self.binance_max_connection_age:
            raise ConfigError("binance_shutdown_notice must be >= 0 and below binance_max_connection_age, got "
                              f"{self.binance_shutdown_notice}")
        if not 0 <= self.bitstamp_rest_lag <= MAX_REST_LAG:
            raise ConfigError(f"bitstamp_rest_lag must be in [0, {MAX_REST_LAG:g}], got {self.bitstamp_rest_lag}")
        if self.bitstamp_listing not in BITSTAMP_LISTINGS:
            raise ConfigError(f"bitstamp_listing must be one of {', '.join(BITSTAMP_LISTINGS)}, "
                              f"got {self.bitstamp_listing!r}")
        if self.probe_every < 0:
            raise ConfigError(f"probe_every must be >= 0, got {self.probe_every}")
        if self.replay_speed not in ("recorded", "max"):
            raise ConfigError(f"replay_speed must be 'recorded' or 'max', got {self.replay_speed!r}")

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol served on either venue: the default first, then the others on both, on Binance only and on
        Bitstamp only."""
        return (self.symbol, *self.extra_symbols, *self.binance_only_symbols, *self.bitstamp_only_symbols)

    @property
    def binance_symbols(self) -> tuple[str, ...]:
        """The symbols Binance serves and lists, the default first."""
        return (self.symbol, *self.extra_symbols, *self.binance_only_symbols)

    @property
    def bitstamp_symbols(self) -> tuple[str, ...]:
        """The symbols Bitstamp serves and lists (each as its lower-case pair), the default first."""
        return (self.symbol, *self.extra_symbols, *self.bitstamp_only_symbols)

    @property
    def pair(self) -> str:
        """The Bitstamp pair for the symbol: the same letters, lower case."""
        return self.symbol.lower()


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def parser() -> OneLineParser:
    """Its errors raise :class:`orderbook.arguments.UsageError` (the command prints them in one line)."""
    p = OneLineParser(
        prog="exchange-sim",
        description="Local Binance + Bitstamp exchange simulator. Prints one JSON line of base URLs on start.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address every port listens on (default %(default)s)")
    p.add_argument("--binance-port", type=whole_number, default=0,
                   help="Binance WebSocket and REST port; 0 picks a free one (default %(default)s)")
    p.add_argument("--bitstamp-port", type=whole_number, default=0,
                   help="Bitstamp WebSocket and REST port; 0 picks a free one (default %(default)s)")
    p.add_argument("--control-port", type=whole_number, default=0,
                   help="control API port; 0 picks a free one (default %(default)s)")
    p.add_argument("--seed", type=whole_number, default=1,
                   help="random seed: the same seed and settings make the same market (default %(default)s)")
    p.add_argument("--rate", type=number, default=50.0,
                   help="events per second per exchange, for each symbol (default %(default)s)")
    p.add_argument("--binance-rate", type=number, help="overrides --rate for Binance")
    p.add_argument("--bitstamp-rate", type=number, help="overrides --rate for Bitstamp")
    p.add_argument("--symbol", default="ETHBTC", type=symbol_list, metavar="SYMBOL[,SYMBOL...]",
                   help="Binance symbols, comma-separated, each its own seeded market on both venues at --rate; "
                   "the first is the default (control API, stats); the Bitstamp pair is the lower case "
                   "(default %(default)s)")
    p.add_argument("--binance-only-symbol", default=(), type=symbol_list, metavar="SYMBOL[,SYMBOL...]",
                   help="more symbols served and listed by Binance only; Bitstamp knows them no more than any pair "
                   "it does not list (default: none)")
    p.add_argument("--bitstamp-only-symbol", default=(), type=symbol_list, metavar="SYMBOL[,SYMBOL...]",
                   help="more symbols served and listed by Bitstamp only (as the lower-case pair); Binance knows them "
                   "no more than any symbol it does not list (default: none)")
    p.add_argument("--levels", type=whole_number, default=300,
                   help="levels per side per exchange (default %(default)s)")
    p.add_argument("--snapshot-delay", type=number, default=0.0,
                   help="seconds before a REST snapshot is sent (default %(default)s)")
    p.add_argument("--binance-ping-interval", type=number, default=20.0, metavar="SECONDS",
                   help="Binance pings each connection this often (default %(default)s)")
    p.add_argument("--binance-pong-timeout", type=number, default=60.0, metavar="SECONDS",
                   help="Binance closes a connection whose pong is this late (default %(default)s)")
    p.add_argument("--binance-weight-limit", type=whole_number, default=6000,
                   help="REST weight per minute per IP (default %(default)s)")
    p.add_argument("--binance-max-client-messages", type=whole_number, default=5, metavar="N",
                   help="client messages per second per connection (pings and pongs count) before a 1008 close "
                   "(default %(default)s)")
    p.add_argument("--binance-max-connection-age", type=number, default=86400.0, metavar="SECONDS",
                   help="close a Binance connection cleanly once it is this old (real Binance: 24 h) "
                   "(default %(default)s)")
    p.add_argument("--binance-shutdown-notice", type=number, default=0.0, metavar="SECONDS",
                   help="send serverShutdown this long before the age cut (0: no notice) (default %(default)s)")
    p.add_argument("--bitstamp-rest-lag", type=number, default=0.0, metavar="SECONDS",
                   help="Bitstamp's REST snapshot is the book as it was this long ago (default %(default)s)")
    p.add_argument("--bitstamp-listing", default="both", choices=BITSTAMP_LISTINGS,
                   help="Bitstamp's listing endpoints: both GET /api/v2/markets/ and the obsolete trading-pairs-info "
                   "(default), markets only (the old one retired: 404), or trading-pairs-info only (before 2026)")
    p.add_argument("--bitstamp-junk-rows", action="store_true",
                   help="end every Bitstamp snapshot's bids with a price-0 row and a null row, as the venue has")
    p.add_argument("--replay-binance", metavar="DATASET_OR_PATH_PREFIX_OR_DIR",
                   help="replay recorded Binance traffic instead of the generated market: a data set of --recordings, "
                   "or a directory bin/run-server --record wrote (its first symbol) (default: generated)")
    p.add_argument("--replay-bitstamp", metavar="DATASET_OR_PATH_PREFIX_OR_DIR",
                   help="replay recorded Bitstamp traffic instead of the generated market: a data set of --recordings, "
                   "or a directory bin/run-server --record wrote (its first symbol) (default: generated)")
    p.add_argument("--replay-speed", choices=("recorded", "max"), default="recorded",
                   help="replay at the recorded pace, or as fast as possible (default %(default)s)")
    p.add_argument("--recordings", type=Path, default=DEFAULT_RECORDINGS,
                   help="where data set names resolve (default %(default)s)")
    p.add_argument("--paused", action="store_true", help="start with event generation paused (POST /resume)")
    p.add_argument("--probe-every", type=whole_number, default=0, metavar="N",
                   help="make every Nth event of each venue a latency probe (GET /probes); 0: none "
                   "(default %(default)s)")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="stop when the process that started this one is gone (even killed with SIGKILL)")
    p.add_argument("--log-level", default="info", type=one_of(*LOG_LEVELS), metavar=f"{{{','.join(LOG_LEVELS)}}}",
                   help="the least severe log lines written, in any case (default %(default)s)")
    p.add_argument("--log-format", default="text", type=one_of(*LOG_FORMATS), metavar=f"{{{','.join(LOG_FORMATS)}}}",
                   help="text, or json: one object per line, as bin/run-server --log-format json wants from its demo "
                   "simulator (default %(default)s)")
    return p


def symbol_list(text: str) -> tuple[str, ...]:
    """``ETHBTC,BTCUSDT``: the symbols in order (checked by :class:`SimulatorConfig`)."""
    symbols = tuple(part.strip() for part in text.split(","))
    if not all(symbols):
        raise argparse.ArgumentTypeError(f"empty symbol in {text!r}")
    return symbols


def _symbols(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else symbol_list(value)


def from_args(args: argparse.Namespace) -> SimulatorConfig:
    symbols = args.symbol if isinstance(args.symbol, tuple) else symbol_list(args.symbol)
    return SimulatorConfig(
        host=args.host,
        binance_port=args.binance_port,
        bitstamp_port=args.bitstamp_port,
        control_port=args.control_port,
        seed=args.seed,
        binance_rate=args.binance_rate if args.binance_rate is not None else args.rate,
        bitstamp_rate=args.bitstamp_rate if args.bitstamp_rate is not None else args.rate,
        symbol=symbols[0],
        extra_symbols=symbols[1:],
        binance_only_symbols=_symbols(args.binance_only_symbol),
        bitstamp_only_symbols=_symbols(args.bitstamp_only_symbol),
        levels=args.levels,
        snapshot_delay=args.snapshot_delay,
        binance_ping_interval=args.binance_ping_interval,
        binance_pong_timeout=args.binance_pong_timeout,
        binance_weight_limit=args.binance_weight_limit,
        binance_max_client_messages=args.binance_max_client_messages,
        binance_max_connection_age=args.binance_max_connection_age,
        binance_shutdown_notice=args.binance_shutdown_notice,
        bitstamp_rest_lag=args.bitstamp_rest_lag,
        bitstamp_junk_rows=args.bitstamp_junk_rows,
        bitstamp_listing=args.bitstamp_listing,
        replay_binance=args.replay_binance,
        replay_bitstamp=args.replay_bitstamp,
        replay_speed=args.replay_speed,
        recordings=args.recordings,
        paused=args.paused,
        probe_every=args.probe_every,
    )
