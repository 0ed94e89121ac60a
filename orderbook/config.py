"""The server's configuration: one frozen object from command-line flags and ``ORDERBOOK_*`` environment variables.

Every flag has an environment variable of the same name (``--grpc-addr`` -> ``ORDERBOOK_GRPC_ADDR``); a flag on the
command line wins. An ``ORDERBOOK_*`` variable that names no flag is an error, not silently ignored: a typo in a
deployment should fail at start-up, not run with a default.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

ENV_PREFIX = "ORDERBOOK_"
_SYMBOL = re.compile(r"[A-Z0-9]{2,20}")
MAX_SERVE_PROCESSES = 64
MIN_SILENCE_TIMEOUT = 1.5
"""Keep-alive pings go out every third of --silence-timeout. Binance drops a connection that sends more than 5
messages a second, pings and pongs included (docs/protocols.md): at this bound the pings take 2 of them, which
leaves room for the pongs to the venue's own pings and for subscriptions."""


class ConfigError(ValueError):
    """A configuration the server cannot run with; the message is the one line the user sees."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    symbol: str
    depth: int
    grpc_addr: Address
    metrics_addr: Address | None
    binance_ws_url: str
    binance_rest_url: str
    bitstamp_ws_url: str
    bitstamp_rest_url: str
    binance_snapshot_limit: int
    max_streams: int
    serve_processes: int
    silence_timeout: float
    max_connection_age: float
    audit_interval: float
    tls_cert: str | None
    tls_key: str | None
    log_level: str
    log_format: str
    demo: bool
    max_streams_per_connection: int | None = None
    """None: a tenth of each serving process's --max-streams share (GrpcServer's default)."""


def parse_address(text: str, flag: str) -> Address:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{flag}: expected HOST:PORT, got {text!r}")
    return Address(host, int(port))


def _url(text: str, flag: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{flag}: expected a {' or '.join(schemes)} URL, got {text!r}")
    return text.rstrip("/")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run-server",
        description="Consolidated Binance + Bitstamp order book, streamed over gRPC. "
        f"Every flag can also be set as an environment variable, {ENV_PREFIX}<FLAG> (e.g. ORDERBOOK_SYMBOL).",
    )
    add = parser.add_argument
    add("--symbol", default="ETHBTC", help="the trading pair, e.g. ETHBTC (default %(default)s)")
    add("--depth", type=int, default=10, help="levels per side in each summary (default %(default)s)")
    add("--grpc-addr", default="127.0.0.1:5002", help="gRPC listen address (default %(default)s)")
    add("--metrics-addr", default="127.0.0.1:9102", help="Prometheus /metrics address; 'off' disables it "
        "(default %(default)s)")
    add("--binance-ws-url", default="wss://stream.binance.com:9443", help="Binance WebSocket base URL")
    add("--binance-rest-url", default="https://api.binance.com", help="Binance REST base URL")
    add("--bitstamp-ws-url", default="wss://ws.bitstamp.net", help="Bitstamp WebSocket base URL")
    add("--bitstamp-rest-url", default="https://www.bitstamp.net", help="Bitstamp REST base URL")
    add("--binance-snapshot-limit", type=int, default=1000,
        help="levels per side in the Binance snapshot, 1-5000 (default %(default)s)")
    add("--max-streams", type=int, default=1000, help="concurrent gRPC streams; more get RESOURCE_EXHAUSTED")
    add("--max-streams-per-connection", type=int, default=None,
        help="concurrent gRPC streams on one client connection; a client's streams beyond it wait for one of its "
        "own to end (default a tenth of --max-streams, per serving process, at least 1)")
    add("--serve-processes", type=int, default=0,
        help="serve gRPC from this many processes sharing the port, fed by the book process, so the fan-out to "
        "many clients does not share a core with the exchange feeds; 0 serves from the book process itself "
        "(default %(default)s)")
    add("--silence-timeout", type=float, default=10.0,
        help="seconds without any byte from an exchange before its connection is taken for dead (default %(default)s)")
    add("--max-connection-age", type=float, default=84_600.0,
        help="seconds after which an exchange connection is replaced by a new one, make-before-break: Binance "
        "closes every connection at 24 hours (default %(default)s, 23.5 h)")
    add("--audit-interval", type=float, default=60.0,
        help="seconds between drift audits: each exchange's book is compared with a fresh snapshot and rebuilt "
        "if they differ; 0 turns audits off (default %(default)s)")
    add("--tls-cert", default=None, help="PEM certificate: serve gRPC over TLS (with --tls-key)")
    add("--tls-key", default=None, help="PEM private key for --tls-cert")
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add("--log-format", default="text", choices=["text", "json"])
    add("--demo", action="store_true", help="start the built-in exchange simulator and use it (no network needed)")
    return parser


def _env_argv(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> list[str]:
    flags = {action.dest.upper(): action for action in parser._actions if action.option_strings}  # noqa: SLF001
    flags.pop("HELP", None)
    argv: list[str] = []
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key == "ORDERBOOK_PYTHON":
            continue
        action = flags.get(key[len(ENV_PREFIX):])
        if action is None:
            raise ConfigError(f"unknown setting {key} (no such flag)")
        if action.nargs == 0:
            if value.lower() in ("1", "true", "yes", "on"):
                argv.append(action.option_strings[0])
            elif value.lower() not in ("0", "false", "no", "off", ""):
                raise ConfigError(f"{key}: expected true or false, got {value!r}")
        else:
            argv += [action.option_strings[0], value]
    return argv


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Parse and validate. Raises :class:`ConfigError`; ``--help`` exits as argparse does."""
    parser = _parser()
    args = parser.parse_args([*_env_argv(parser, os.environ if environ is None else environ), *(argv or [])])
    symbol = args.symbol.upper()
    if not _SYMBOL.fullmatch(symbol):
        raise ConfigError(f"--symbol: expected letters and digits like ETHBTC, got {args.symbol!r}")
    if not 1 <= args.depth <= 1000:
        raise ConfigError(f"--depth: expected 1 to 1000, got {args.depth}")
    if not 1 <= args.binance_snapshot_limit <= 5000:
        raise ConfigError(f"--binance-snapshot-limit: expected 1 to 5000, got {args.binance_snapshot_limit}")
    if args.max_streams < 1:
        raise ConfigError("--max-streams: expected at least 1")
    if args.max_streams_per_connection is not None and args.max_streams_per_connection < 1:
        raise ConfigError(f"--max-streams-per-connection: expected at least 1, got {args.max_streams_per_connection}")
    if not 0 <= args.serve_processes <= MAX_SERVE_PROCESSES:
        raise ConfigError(f"--serve-processes: expected 0 to {MAX_SERVE_PROCESSES}, got {args.serve_processes}")
    if not args.silence_timeout >= MIN_SILENCE_TIMEOUT:
        raise ConfigError(f"--silence-timeout: expected at least {MIN_SILENCE_TIMEOUT} seconds (keep-alive pings go "
                          f"out every third of it, and Binance drops a connection that sends over 5 messages a "
                          f"second), got {args.silence_timeout}")
    if not args.max_connection_age > 0:
        raise ConfigError(f"--max-connection-age: expected a positive number of seconds, got {args.max_connection_age}")
    if not 0 <= args.audit_interval < float("inf"):
        raise ConfigError(f"--audit-interval: expected 0 (off) or a number of seconds, got {args.audit_interval}")
    if args.depth > args.binance_snapshot_limit:
        raise ConfigError(f"--depth {args.depth} is more than --binance-snapshot-limit {args.binance_snapshot_limit}: "
                          "levels past the snapshot are unknown until they change, so they cannot be served")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    ws, rest = ("ws", "wss"), ("http", "https")
    return Config(
        symbol=symbol,
        depth=args.depth,
        grpc_addr=parse_address(args.grpc_addr, "--grpc-addr"),
        metrics_addr=None if args.metrics_addr == "off" else parse_address(args.metrics_addr, "--metrics-addr"),
        binance_ws_url=_url(args.binance_ws_url, "--binance-ws-url", ws),
        binance_rest_url=_url(args.binance_rest_url, "--binance-rest-url", rest),
        bitstamp_ws_url=_url(args.bitstamp_ws_url, "--bitstamp-ws-url", ws),
        bitstamp_rest_url=_url(args.bitstamp_rest_url, "--bitstamp-rest-url", rest),
        binance_snapshot_limit=args.binance_snapshot_limit,
        max_streams=args.max_streams,
        serve_processes=args.serve_processes,
        silence_timeout=args.silence_timeout,
        max_connection_age=args.max_connection_age,
        audit_interval=args.audit_interval,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        log_level=args.log_level,
        log_format=args.log_format,
        demo=args.demo,
        max_streams_per_connection=args.max_streams_per_connection,
    )
