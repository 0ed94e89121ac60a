"""The configuration of a book node (``bin/run-server``, :class:`Config`) and of an edge (``bin/run-edge``,
:class:`EdgeConfig`): each one frozen object from command-line flags and environment variables, ``ORDERBOOK_*`` for
a book node and ``ORDERBOOK_EDGE_*`` for an edge, the flags they share made and checked by the same helpers.

Every flag has an environment variable of the same name (``--grpc-addr`` -> ``ORDERBOOK_GRPC_ADDR``); a flag on the
command line wins. An ``ORDERBOOK_*`` variable that names no flag is an error, not silently ignored: a typo in a
deployment should fail at start-up, not run with a default. Every error is one line naming the setting as the user
wrote it: the variable for a value that came from the environment (``ORDERBOOK_DEPTH: expected 1 to 1000, got 0``),
the flag for one from the command line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orderbook.address import Address, BadAddress
from orderbook.arguments import OneLineParser, UsageError, number, one_of, whole_number
from orderbook.exchanges import VENUES
from orderbook.exchanges.base import Venue
from orderbook.prices import BadNumber, parse_decimal
from orderbook.quote import MAX_FEE
from orderbook.recording.writer import RecordingUnavailable, check_directory
from orderbook.relay.keys import DEFAULT_PREFIX, DEFAULT_SHARD, Keys
from orderbook.relay.redis_url import BadRedisUrl, check_url
from orderbook.symbol_state import MAX_SYMBOLS, SYMBOL, canonical_symbol

ENV_PREFIX = "ORDERBOOK_"
EDGE_ENV_PREFIX = "ORDERBOOK_EDGE_"
MAX_SERVE_PROCESSES = 64
MIN_SILENCE_TIMEOUT = 1.5
"""Keep-alive pings go out every third of --silence-timeout. Binance drops a connection that sends more than 5
messages a second, pings and pongs included (docs/protocols.md): at this bound the pings take 2 of them, which
leaves room for the pongs to the venue's own pings and for subscriptions."""
MIN_RECORD_FILE_BYTES = 64 << 10
"""A recording file holds at least this much (a block or two of a busy feed)."""
MIN_LISTING_INTERVAL = 1.0
"""Binance's listing weighs 20 of its 6,000 a minute: even once a second it takes a fifth of the budget; the default
(300 s) takes a 1,500th."""


class ConfigError(ValueError):
    """A configuration the server cannot run with; the message is the one line the user sees."""


@dataclass(frozen=True, slots=True)
class VenueSettings:
    """One venue's endpoints and its own options (the keywords its constructor takes)."""

    name: str
    ws_url: str
    rest_url: str
    options: tuple[tuple[str, int], ...] = ()

    def venue(self) -> Venue:
        venue_class = next(v for v in VENUES if v.name == self.name)
        return venue_class(self.ws_url, self.rest_url, **dict(self.options))


@dataclass(frozen=True, slots=True)
class Config:
    symbols: tuple[str, ...]
    """Every symbol followed; the first is the default symbol (``OrderbookAggregator.BookSummary``)."""
    depth: int
    grpc_addr: Address
    metrics_addr: Address | None
    venues: tuple[VenueSettings, ...]
    max_streams: int
    serve_processes: int
    silence_timeout: float
    max_connection_age: float
    audit_interval: float
    listing_interval: float
    """Seconds between readings of each venue's listing (``--listing-interval``)."""
    max_lag: float
    """Seconds an exchange's books may be behind it and still be served (``--max-lag``)."""
    tls_cert: str | None
    tls_key: str | None
    log_level: str
    log_format: str
    demo: bool
    max_streams_per_connection: int | None = None
    """None: a tenth of each serving process's --max-streams share (GrpcServer's default)."""
    ready_file: str | None = None
    """Where to write the bound ports once listening (``--ready-file``); None: nowhere."""
    publish: str | None = None
    """The Redis URL to publish through (``--publish``); None: this process serves only its own clients."""
    relay_prefix: str = DEFAULT_PREFIX
    """What the relay's Redis keys start with (``--relay-prefix``): one deployment per key space."""
    shard: str = DEFAULT_SHARD
    """The shard of the deployment this node's symbols are (``--shard``): its nodes elect a leader of their own."""
    relay_key: bytes | None = field(default=None, repr=False)
    """The secret read from ``--relay-key``'s file, signing every envelope published; None: unsigned."""
    taker_fees: tuple[tuple[str, int], ...] = ()
    """Each venue's taker fee (``--taker-fee``), scaled (:mod:`orderbook.prices`); a venue not named pays none."""
    record: str | None = None
    """The directory to record what the venues sent in (``--record``); None: nothing is recorded."""
    record_summaries: bool = False
    """Record every summary published too (``--record-summaries``)."""
    record_file_bytes: int = 256 << 20
    record_max_bytes: int = 10 << 30
    names: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """The variable behind each setting that came from the environment, by ``dest`` (:func:`environment_names`):
    an error found only once running (a port in use, a symbol no venue lists) names ``ORDERBOOK_GRPC_ADDR`` if
    that is what the user wrote. Read it through :meth:`setting`, which names the flag for any other."""

    def setting(self, dest: str) -> str:
        return setting_name(self.names, dest)

    @property
    def symbol(self) -> str:
        """The default symbol."""
        return self.symbols[0]

    def venue(self, name: str) -> VenueSettings:
        return next(settings for settings in self.venues if settings.name == name)


def setting_name(names: Mapping[str, str], dest: str) -> str:
    """The setting ``dest`` as the user gave it: its variable in ``names`` (:func:`environment_names`), else its
    flag."""
    return names.get(dest) or "--" + dest.replace("_", "-")


def environment_names(name: Mapping[str, str]) -> dict[str, str]:
    """Of :func:`parse_settings`'s names, those of the settings given in the environment (the others are flags)."""
    return {dest: given for dest, given in name.items() if not given.startswith("-")}


def parse_address(text: str, flag: str) -> Address:
    try:
        return Address.parse(text)
    except BadAddress as error:
        raise ConfigError(f"{flag}: {error}") from None


def _url(text: str, flag: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{flag}: expected a {' or '.join(schemes)} URL, got {text!r}")
    return text.rstrip("/")


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def add_listen_flags(parser: argparse.ArgumentParser, metrics_default: str) -> None:
    """``--grpc-addr`` and ``--metrics-addr``, as a book node and an edge both take them."""
    parser.add_argument("--grpc-addr", default="127.0.0.1:5002", help="gRPC listen address (default %(default)s)")
    parser.add_argument("--metrics-addr", default=metrics_default,
                        help="Prometheus /metrics address; 'off' disables it (default %(default)s)")


def add_tls_and_log_flags(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert``/``--tls-key`` and ``--log-level``/``--log-format``, as a book node and an edge both take them."""
    add = parser.add_argument
    add("--tls-cert", default=None, help="PEM certificate: serve gRPC over TLS (with --tls-key)")
    add("--tls-key", default=None, help="PEM private key for --tls-cert")
    add("--log-level", default="info", type=one_of(*LOG_LEVELS), metavar="{" + ",".join(LOG_LEVELS) + "}",
        help="the least severe log lines written, in any case (default %(default)s)")
    add("--log-format", default="text", type=one_of(*LOG_FORMATS), metavar="{" + ",".join(LOG_FORMATS) + "}",
        help="text for people, or json: one object per line, the fatal error line included (default %(default)s)")


MAX_RELAY_KEY = 4096
"""Bytes a --relay-key file may hold: a secret, not a document."""


def add_relay_flags(parser: argparse.ArgumentParser) -> None:
    """``--relay-prefix`` and ``--relay-key``, as a book node and an edge both take them."""
    add = parser.add_argument
    add("--relay-prefix", default=DEFAULT_PREFIX, metavar="NAME",
        help="what the relay's Redis keys start with (1 to 64 letters, digits, '-', '_' or '.'): the same on every "
        "book node and edge of a deployment, another for a second deployment on the same Redis database "
        "(default %(default)s)")
    add("--relay-key", default=None, metavar="FILE",
        help="a file holding the deployment's secret (surrounding whitespace aside), read once at start: every "
        "envelope is signed with HMAC-SHA256 under it, and an edge with it refuses any that is not; the same "
        "secret on every book node and edge (default: unsigned)")


def relay_settings(args: argparse.Namespace, name: Mapping[str, str]) -> tuple[str, bytes | None]:
    """The checked ``--relay-prefix``, and the secret in ``--relay-key``'s file (None without one). Raises
    :class:`ConfigError`."""
    try:
        Keys(args.relay_prefix)
    except ValueError as error:
        raise ConfigError(f"{name['relay_prefix']}: {error}") from None
    if args.relay_key is None:
        return args.relay_prefix, None
    try:
        with open(args.relay_key, "rb") as file:
            raw = file.read(MAX_RELAY_KEY + 1)
    except OSError as error:
        raise ConfigError(f"{name['relay_key']} {args.relay_key}: {error.strerror or error}") from None
    key = raw.strip()
    if not key or len(raw) > MAX_RELAY_KEY:
        raise ConfigError(f"{name['relay_key']} {args.relay_key}: expected a secret of 1 to {MAX_RELAY_KEY} bytes, "
                          f"the file has {'more' if key else 'none'}")
    return args.relay_prefix, key


def _parser() -> OneLineParser:
    parser = OneLineParser(
        prog="run-server",
        description="Consolidated Binance + Bitstamp order book, streamed over gRPC. "
        f"Every flag can also be set as an environment variable, {ENV_PREFIX}<FLAG> (e.g. ORDERBOOK_SYMBOL).",
    )
    add = parser.add_argument
    add("--symbol", default="ETHBTC", help="the trading pairs, comma-separated, e.g. ETHBTC,BTCUSDT; the first is the "
        "default symbol, served by OrderbookAggregator.BookSummary; each is served from every venue that lists it "
        f"(at most {MAX_SYMBOLS}; default %(default)s)")
    add("--depth", type=whole_number, default=10, help="levels per side in each summary (default %(default)s)")
    add_listen_flags(parser, metrics_default="127.0.0.1:9102")
    for venue in VENUES:
        add(f"--{venue.name}-ws-url", default=venue.default_ws_url,
            help=f"{venue.title} WebSocket base URL (default %(default)s)")
        add(f"--{venue.name}-rest-url", default=venue.default_rest_url,
            help=f"{venue.title} REST base URL (default %(default)s)")
        for option in venue.options:
            add(f"--{venue.name}-{option.flag}", type=whole_number, default=option.default,
                help=f"{option.help}, {option.low}-{option.high} (default %(default)s)")
    add("--max-streams", type=whole_number, default=1000,
        help="concurrent gRPC streams; more get RESOURCE_EXHAUSTED (default %(default)s)")
    add("--max-streams-per-connection", type=whole_number, default=None,
        help="concurrent gRPC streams on one client connection; a client's streams beyond it wait for one of its "
        "own to end (default a tenth of --max-streams, per serving process, at least 1)")
    add("--serve-processes", type=whole_number, default=0,
        help="serve gRPC from this many processes sharing the port, fed by the book process, so the fan-out to "
        "many clients does not share a core with the exchange feeds; 0 serves from the book process itself "
        "(default %(default)s)")
    add("--silence-timeout", type=number, default=10.0,
        help="seconds without any byte from an exchange before its connection is taken for dead (default %(default)s)")
    add("--max-connection-age", type=number, default=84_600.0,
        help="seconds after which an exchange connection is replaced by a new one, make-before-break: Binance "
        "closes every connection at 24 hours (default %(default)s, 23.5 h)")
    add("--audit-interval", type=number, default=60.0,
        help="seconds between drift audits: each exchange's book is compared with a fresh snapshot and rebuilt "
        "if they differ; 0 turns audits off (default %(default)s)")
    add("--listing-interval", type=number, default=300.0,
        help="seconds between readings of each venue's listing while running: a symbol that stops trading on a "
        "venue is left out there until it trades again (default %(default)s)")
    add("--max-lag", type=number, default=2.0,
        help="seconds an exchange's books may be behind it (its event times against ours, the clocks' constant "
        "offset taken out) and still be served; past it they leave the merged book and the venues in step until "
        "caught up (default %(default)s)")
    add_tls_and_log_flags(parser)
    add("--publish", default=None, metavar="URL",
        help="also publish every symbol's summaries through Redis, redis://[:PASSWORD@]HOST[:PORT][/DB] (rediss:// "
        "for TLS; redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB] through Sentinel), for "
        "bin/run-edge to serve; book nodes with the same symbols and URL elect one leader, the others stand by "
        "(README, Beyond one machine)")
    add("--shard", default=DEFAULT_SHARD, metavar="NAME",
        help="with --publish: the shard of the deployment this node's symbols are (1 to 64 letters, digits, '-', '_' "
        "or '.'); the nodes of a shard elect a leader of their own, each symbol is one shard's, and edges serve "
        "every shard's symbols (default %(default)s)")
    add_relay_flags(parser)
    add("--taker-fee", default="", metavar="VENUE=FRACTION[,...]",
        help="the desk's own taker fee at each venue, as a fraction, e.g. binance=0.001,bitstamp=0.004: the "
        "quotes asked net of fees (OrderbookQuotes.Quote) are routed and priced with them; each below 0.1, a venue "
        "not named pays none (default: none)")
    add("--record", default=None, metavar="DIR",
        help="record every frame, snapshot and listing answer and connection event of every venue in DIR (made if "
        "need be), compressed, for the simulator to replay (docs/recording.md); never slows the book: when the "
        "disk cannot keep up, records are dropped and counted")
    add("--record-summaries", action="store_true", help="with --record: record every summary published too")
    add("--record-file-bytes", type=whole_number, default=256 << 20,
        help="with --record: start a new file past this many bytes (default %(default)s, 256 MiB)")
    add("--record-max-bytes", type=whole_number, default=10 << 30,
        help="with --record: the recording's files take at most this many bytes together, the oldest deleted "
        "first (default %(default)s, 10 GiB)")
    add("--demo", action="store_true", help="start the built-in exchange simulator and use it (no network needed)")
    add("--ready-file", default=None, metavar="PATH",
        help='once listening, write {"grpc_port": N, "metrics_port": N or null} here as one JSON line, replacing '
        "the file atomically: the ports actually bound, for a supervisor or test that asked for port 0")
    return parser


def _settings(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if action.option_strings and action.dest != "help"]


def _env_argv(parser: argparse.ArgumentParser, environ: Mapping[str, str],
              prefix: str) -> tuple[list[str], dict[str, str]]:
    """The ``<prefix>*`` variables as command-line words, and the variable behind each flag used. The edge's own
    variables (``ORDERBOOK_EDGE_*``) and the launcher's (``ORDERBOOK_PYTHON``) are not the server's."""
    flags = {action.dest.upper(): action for action in _settings(parser)}
    others = {EDGE_ENV_PREFIX} - {prefix}
    argv: list[str] = []
    names: dict[str, str] = {}
    for key, value in sorted(environ.items()):
        if not key.startswith(prefix) or key == "ORDERBOOK_PYTHON" or any(map(key.startswith, others)):
            continue
        action = flags.get(key[len(prefix):])
        if action is None:
            raise ConfigError(f"unknown setting {key} (no such flag)")
        flag = action.option_strings[0]
        names[flag] = key
        if action.nargs == 0:
            if value.lower() in ("1", "true", "yes", "on"):
                argv.append(flag)
            elif value.lower() not in ("0", "false", "no", "off", ""):
                raise ConfigError(f"{key}: expected true or false, got {value!r}")
        else:
            argv.append(f"{flag}={value}")  # one word: a value that starts with "-" is still the value
    return argv, names


_NOT_GIVEN = object()


def _given(parser: argparse.ArgumentParser, argv: Sequence[str], names: Mapping[str, str]) -> dict[str, Any]:
    """The settings ``argv`` gives, and only those (by dest). An error names the setting through ``names``
    (flag -> what the user wrote), so that a bad ``ORDERBOOK_DEPTH`` is reported as that, not as ``--depth``."""
    namespace = argparse.Namespace(**dict.fromkeys((action.dest for action in _settings(parser)), _NOT_GIVEN))
    try:
        parser.parse_args(argv, namespace)
    except UsageError as error:
        setting = names.get(error.setting, error.setting) if error.setting else None
        raise ConfigError(f"{setting}: {error.detail}" if setting else error.detail) from None
    return {dest: value for dest, value in vars(namespace).items() if value is not _NOT_GIVEN}


def requested_log_format(argv: Sequence[str], environ: Mapping[str, str], prefix: str = ENV_PREFIX) -> str:
    """The log format asked for (``--log-format``, else ``<prefix>LOG_FORMAT``), as well as it can be made out
    from a configuration that :func:`load_config` refused: the error line is written in that format too. Text when
    it cannot be made out."""
    parser = OneLineParser(add_help=False)
    parser.add_argument("--log-format", type=one_of(*LOG_FORMATS), default=None)
    for words in ([*argv], [f"--log-format={environ.get(prefix + 'LOG_FORMAT', 'text')}"]):
        try:
            found = parser.parse_known_args(words)[0].log_format
        except UsageError:
            continue
        if found is not None:
            return str(found)
    return "text"


def parse_settings(parser: argparse.ArgumentParser, argv: Sequence[str] | None, environ: Mapping[str, str] | None,
                   prefix: str) -> tuple[argparse.Namespace, dict[str, str]]:
    """The settings from the command line over ``<prefix><FLAG>`` variables over the defaults, and the name of
    each setting as the user gave it (flag or variable), for error lines. Raises :class:`ConfigError`."""
    env_argv, env_names = _env_argv(parser, os.environ if environ is None else environ, prefix)
    from_env = _given(parser, env_argv, env_names)
    from_command_line = _given(parser, argv or [], {})
    args = argparse.Namespace(**{action.dest: action.default for action in _settings(parser)}
                              | from_env | from_command_line)
    flag = {action.dest: action.option_strings[0] for action in _settings(parser)}
    name = flag | {dest: env_names[flag[dest]] for dest in from_env} | {dest: flag[dest] for dest in from_command_line}
    return args, name


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:  # noqa: C901
    """Parse and validate. Raises :class:`ConfigError`; ``--help`` exits as argparse does."""
    args, name = parse_settings(_parser(), argv, environ, ENV_PREFIX)
    symbols = tuple(dict.fromkeys(canonical_symbol(part) for part in args.symbol.split(",")))
    for symbol in symbols:
        if not SYMBOL.fullmatch(symbol):
            raise ConfigError(f"{name['symbol']}: expected 2 to 20 letters (of any script) and digits like ETHBTC "
                              f"(several: ETHBTC,BTCUSDT), got {args.symbol if len(symbols) == 1 else symbol!r}")
    if len(symbols) > MAX_SYMBOLS:
        raise ConfigError(f"{name['symbol']}: at most {MAX_SYMBOLS} symbols, got {len(symbols)}")
    if not 1 <= args.depth <= 1000:
        raise ConfigError(f"{name['depth']}: expected 1 to 1000, got {args.depth}")
    venues = tuple(_venue_settings(venue, args, name) for venue in VENUES)
    if args.max_streams < 1:
        raise ConfigError(f"{name['max_streams']}: expected at least 1, got {args.max_streams}")
    if args.max_streams_per_connection is not None and args.max_streams_per_connection < 1:
        raise ConfigError(f"{name['max_streams_per_connection']}: expected at least 1, "
                          f"got {args.max_streams_per_connection}")
    if not 0 <= args.serve_processes <= MAX_SERVE_PROCESSES:
        raise ConfigError(f"{name['serve_processes']}: expected 0 to {MAX_SERVE_PROCESSES}, "
                          f"got {args.serve_processes}")
    if not args.silence_timeout >= MIN_SILENCE_TIMEOUT:
        raise ConfigError(f"{name['silence_timeout']}: expected at least {MIN_SILENCE_TIMEOUT} seconds (keep-alive "
                          f"pings go out every third of it, and Binance drops a connection that sends over 5 messages "
                          f"a second), got {args.silence_timeout}")
    if not args.max_connection_age > 0:
        raise ConfigError(f"{name['max_connection_age']}: expected a positive number of seconds, "
                          f"got {args.max_connection_age}")
    if not 0 <= args.audit_interval < float("inf"):
        raise ConfigError(f"{name['audit_interval']}: expected 0 (off) or a number of seconds, "
                          f"got {args.audit_interval}")
    if not MIN_LISTING_INTERVAL <= args.listing_interval < float("inf"):
        raise ConfigError(f"{name['listing_interval']}: expected at least {MIN_LISTING_INTERVAL:g} seconds, "
                          f"got {args.listing_interval}")
    if not 0 < args.max_lag < float("inf"):
        raise ConfigError(f"{name['max_lag']}: expected a positive number of seconds, got {args.max_lag}")
    for settings in venues:
        depth = settings.venue().snapshot_depth
        if depth is not None and args.depth > depth:
            dest = f"{settings.name}_{settings.venue().snapshot_depth_option}"
            raise ConfigError(f"{name['depth']} {args.depth} is more than {name[dest]} {depth}: levels past the "
                              "snapshot are unknown until they change, so they cannot be served")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError(f"{name['tls_cert']} and {name['tls_key']} go together")
    if args.publish is not None:
        try:
            check_url(args.publish)
        except BadRedisUrl as error:
            raise ConfigError(f"{name['publish']}: {error}") from None
    relay_prefix, relay_key = relay_settings(args, name)
    try:
        Keys(relay_prefix, args.shard)
    except ValueError as error:
        raise ConfigError(f"{name['shard']}: {error}") from None
    taker_fees = parse_taker_fees(args.taker_fee, name["taker_fee"])
    _check_recording(args, name)
    return Config(
        symbols=symbols,
        depth=args.depth,
        grpc_addr=parse_address(args.grpc_addr, name["grpc_addr"]),
        metrics_addr=None if args.metrics_addr == "off" else parse_address(args.metrics_addr, name["metrics_addr"]),
        venues=venues,
        max_streams=args.max_streams,
        serve_processes=args.serve_processes,
        silence_timeout=args.silence_timeout,
        max_connection_age=args.max_connection_age,
        audit_interval=args.audit_interval,
        listing_interval=args.listing_interval,
        max_lag=args.max_lag,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        log_level=args.log_level,
        log_format=args.log_format,
        demo=args.demo,
        max_streams_per_connection=args.max_streams_per_connection,
        ready_file=args.ready_file or None,
        publish=args.publish or None,
        relay_prefix=relay_prefix,
        shard=args.shard,
        relay_key=relay_key,
        taker_fees=taker_fees,
        record=args.record or None,
        record_summaries=args.record_summaries,
        record_file_bytes=args.record_file_bytes,
        record_max_bytes=args.record_max_bytes,
        names=environment_names(name),
    )


def parse_taker_fees(text: str, setting: str) -> tuple[tuple[str, int], ...]:
    """``VENUE=FRACTION[,...]`` as (venue, scaled fee) pairs; each venue known, named once, its fee in [0, 0.1)."""
    known = [venue.name for venue in VENUES]
    fees: dict[str, int] = {}
    for part in filter(None, (part.strip() for part in text.split(","))):
        venue, equals, value = part.partition("=")
        venue = venue.strip().lower()
        if not equals:
            raise ConfigError(f"{setting}: expected VENUE=FRACTION like binance=0.001, got {part!r}")
        if venue not in known:
            raise ConfigError(f"{setting}: unknown venue {venue!r} (the venues are {', '.join(known)})")
        if venue in fees:
            raise ConfigError(f"{setting}: {venue} is given twice")
        try:
            fee = parse_decimal(value.strip())
        except BadNumber:
            fee = MAX_FEE
        if fee >= MAX_FEE:
            raise ConfigError(f"{setting}: {venue}: expected a fraction from 0 to below 0.1 like 0.001, got "
                              f"{value.strip()!r}")
        fees[venue] = fee
    return tuple(fees.items())
def _check_recording(args: argparse.Namespace, name: Mapping[str, str]) -> None:
    """The ``--record`` settings hold together and its directory can be written in. Raises :class:`ConfigError`."""
    if args.record_summaries and not args.record:
        raise ConfigError(f"{name['record_summaries']} goes with {name['record']}")
    if args.record_file_bytes < MIN_RECORD_FILE_BYTES:
        raise ConfigError(f"{name['record_file_bytes']}: expected at least {MIN_RECORD_FILE_BYTES}, "
                          f"got {args.record_file_bytes}")
    if args.record_max_bytes < args.record_file_bytes:
        raise ConfigError(f"{name['record_max_bytes']} {args.record_max_bytes} is less than "
                          f"{name['record_file_bytes']} {args.record_file_bytes}")
    if args.record:
        try:
            check_directory(Path(args.record))
        except RecordingUnavailable as error:
            raise ConfigError(f"{name['record']} {error}") from None


def _venue_settings(venue: type[Venue], args: argparse.Namespace, name: Mapping[str, str]) -> VenueSettings:
    options = []
    for option in venue.options:
        dest = f"{venue.name}_{option.keyword}"
        value = getattr(args, dest)
        if not option.low <= value <= option.high:
            raise ConfigError(f"{name[dest]}: expected {option.low} to {option.high}, got {value}")
        options.append((option.keyword, value))
    return VenueSettings(
        venue.name,
        _url(getattr(args, f"{venue.name}_ws_url"), name[f"{venue.name}_ws_url"], ("ws", "wss")),
        _url(getattr(args, f"{venue.name}_rest_url"), name[f"{venue.name}_rest_url"], ("http", "https")),
        tuple(options),
    )


# -- an edge (bin/run-edge) ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    source: str
    grpc_addr: Address
    metrics_addr: Address | None
    max_streams: int
    tls_cert: str | None
    tls_key: str | None
    log_level: str
    log_format: str
    ready_file: str | None = None
    relay_prefix: str = DEFAULT_PREFIX
    """What the relay's Redis keys start with (``--relay-prefix``): the book nodes' own."""
    relay_key: bytes | None = field(default=None, repr=False)
    """The secret read from ``--relay-key``'s file: every envelope must be signed with it; None: none need be."""
    default_symbol: str | None = None
    """The symbol ``BookSummary`` serves (``--default-symbol``); None: the default symbol of the first shard by
    name."""
    names: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """The variable behind each setting given in the environment (``ORDERBOOK_EDGE_GRPC_ADDR``), for errors found
    once running, as :attr:`Config.names`."""

    def setting(self, dest: str) -> str:
        return setting_name(self.names, dest)


def _edge_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="run-edge",
        description="Serves the consolidated books a leading book node (bin/run-server --publish) publishes through "
        "Redis, over the same gRPC services; holds no exchange connection. Every flag can also be set as an "
        f"environment variable, {EDGE_ENV_PREFIX}<FLAG> (e.g. {EDGE_ENV_PREFIX}SOURCE).",
    )
    add = parser.add_argument
    add("--source", default=None, metavar="URL", help="the Redis the book nodes publish through, "
        "redis://[:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS, redis+sentinel://... through Sentinel): the same "
        "URL as their --publish (required)")
    add("--default-symbol", default=None, metavar="SYMBOL",
        help="the symbol BookSummary serves, whichever shard serves it (default: the default symbol, the first of "
        "--symbol, of the first shard by name)")
    add_relay_flags(parser)
    add_listen_flags(parser, metrics_default="127.0.0.1:9103")
    add("--max-streams", type=whole_number, default=1000,
        help="concurrent gRPC streams; more get RESOURCE_EXHAUSTED (default %(default)s)")
    add_tls_and_log_flags(parser)
    add("--ready-file", default=None, metavar="PATH",
        help='once listening, write {"grpc_port": N, "metrics_port": N or null} here as one JSON line')
    return parser


def load_edge_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """Parse and validate. Raises :class:`ConfigError`; ``--help`` exits as argparse does."""
    args, name = parse_settings(_edge_parser(), argv, environ, EDGE_ENV_PREFIX)
    if not args.source:
        raise ConfigError(f"{name['source']} is required: the Redis URL the book nodes publish through")
    try:
        check_url(args.source)
    except BadRedisUrl as error:
        raise ConfigError(f"{name['source']}: {error}") from None
    if args.max_streams < 1:
        raise ConfigError(f"{name['max_streams']}: expected at least 1, got {args.max_streams}")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError(f"{name['tls_cert']} and {name['tls_key']} go together")
    relay_prefix, relay_key = relay_settings(args, name)
    default_symbol = None
    if args.default_symbol:
        default_symbol = canonical_symbol(args.default_symbol)
        if not SYMBOL.fullmatch(default_symbol):
            raise ConfigError(f"{name['default_symbol']}: expected 2 to 20 letters or digits, got "
                              f"{args.default_symbol[:40]!r}")
    return EdgeConfig(
        source=args.source,
        grpc_addr=parse_address(args.grpc_addr, name["grpc_addr"]),
        metrics_addr=None if args.metrics_addr == "off" else parse_address(args.metrics_addr, name["metrics_addr"]),
        max_streams=args.max_streams,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        log_level=args.log_level,
        log_format=args.log_format,
        ready_file=args.ready_file or None,
        relay_prefix=relay_prefix,
        relay_key=relay_key,
        default_symbol=default_symbol,
        names=environment_names(name),
    )
