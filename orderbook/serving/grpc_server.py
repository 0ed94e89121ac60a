"""The gRPC endpoint: ``orderbook.OrderbookAggregator/BookSummary``, ``orderbook.OrderbookStreams`` (``Book``
and ``Symbols``), ``orderbook.OrderbookQuotes/Quote`` (:mod:`orderbook.serving.quotes`; an edge, which has no
quotes to serve, answers it UNIMPLEMENTED, naming the book nodes), health checking and reflection.

``BookSummary`` streams the default symbol at the full ``--depth``, as it did when there was one symbol; ``Book``
streams any configured symbol at any depth up to that, and ``Symbols`` lists them with their venues
(:mod:`orderbook.serving.symbols`). The process must be gevent-patched and have called
:func:`orderbook.gevent_polling.init_grpc_gevent` (grpcio's gevent integration) before this module's
objects are created. Each RPC runs in its own greenlet (:class:`GreenletExecutor`). Summaries arrive
pre-serialized from the broadcasters and are sent as they are.

Hostile or careless clients are bounded here (README, "Hostile clients"):

* Book, BookSummary and Quote streams are counted together by the service itself: beyond ``max_streams`` a stream is
  refused with RESOURCE_EXHAUSTED (and a throttled log line), while health checks, reflection and ``Symbols``
  are still served. grpcio's ``maximum_concurrent_rpcs``, which counts every RPC, is kept above it
  (``max_streams`` plus a reserve) only so that the greenlets stay bounded.
* One HTTP/2 connection may have at most ``max_streams_per_connection`` streams open at once (gRPC core's
  ``grpc.max_concurrent_streams``, announced in SETTINGS): a client's streams beyond it wait in its own channel
  for one of its streams to end; they take nothing from other clients.
* The request is read as raw bytes and parsed here: a body that is not the method's message (``Empty``, or
  ``BookRequest``) gets INVALID_ARGUMENT, keeps no memory (grpcio's own deserializer failure path kept about
  20 KB per call, never freed) and is logged at most once a minute with a count, without a traceback. Health and
  reflection are grpcio's own services, whose deserializers leak the same way: :class:`ParseInHandler` reads
  their requests as bytes too and parses them before handing them on.
* An unknown symbol gets NOT_FOUND and a depth beyond ``--depth``, or a quote's amount that is not finite and
  above 0 or a side that is neither BUY nor SELL, INVALID_ARGUMENT, before any stream is counted;
  a stream of a shallower depth keeps its broadcaster only while it lasts (:mod:`orderbook.serving.symbols`).
* A connection with no call open for ``idle_timeout`` seconds is closed (``grpc.max_connection_idle_ms``: GOAWAY,
  then the socket is closed), so connections that never open a stream cannot pile up until the process runs out
  of file descriptors. That clock starts only once the connection is set up: before, a connection that does not
  finish its TLS handshake and send its HTTP/2 settings within :data:`HANDSHAKE_TIMEOUT` is closed
  (``grpc.server_handshake_timeout_ms``; gRPC core's default held one 120 s).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn, TypeVar

import grpc
from gevent.event import Event
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from google.protobuf.message import DecodeError, Message
from grpc_reflection.v1alpha import reflection

from orderbook.address import Address
from orderbook.logs import LogThrottle
from orderbook.proto import orderbook_pb2, orderbook_quotes_pb2, orderbook_streams_pb2
from orderbook.serving.broadcast import SummaryBroadcaster
from orderbook.serving.executor import GreenletExecutor
from orderbook.serving.quotes import BadQuoteRequest, ServedQuotes
from orderbook.serving.stats import ServingStats
from orderbook.serving.symbols import Books, DepthNotServed, Unavailable, UnknownSymbol, symbol_list

log = logging.getLogger(__name__)

SERVICE_NAME = orderbook_pb2.DESCRIPTOR.services_by_name["OrderbookAggregator"].full_name
METHOD_NAME = "BookSummary"
METHOD_PATH = f"/{SERVICE_NAME}/{METHOD_NAME}"
STREAMS_SERVICE_NAME = orderbook_streams_pb2.DESCRIPTOR.services_by_name["OrderbookStreams"].full_name
BOOK_PATH = f"/{STREAMS_SERVICE_NAME}/Book"
SYMBOLS_PATH = f"/{STREAMS_SERVICE_NAME}/Symbols"
QUOTES_SERVICE_NAME = orderbook_quotes_pb2.DESCRIPTOR.services_by_name["OrderbookQuotes"].full_name
QUOTE_PATH = f"/{QUOTES_SERVICE_NAME}/Quote"
NO_QUOTES_HERE = ("quotes are not served here: this server (an edge, bin/run-edge) holds only the top levels of the "
                  "books; the book nodes (bin/run-server) serve OrderbookQuotes.Quote from every level")
"""The UNIMPLEMENTED detail of a server with no quotes to serve."""

_SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    # Ping idle connections so a client that vanished without closing its socket (host gone, cable pulled)
    # is detected and its stream ended; a killed client process closes its socket and is seen at once.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Keep pinging while the market is quiet and no summary is sent (the default stops after two pings).
    ("grpc.http2.max_pings_without_data", 0),
    # Accept client keepalive pings down to every 5 s (the bundled client pings every 20 s) without treating
    # them as abuse.
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    # Requests are an Empty message, a BookRequest, a QuoteRequest, or a small reflection or health query; a summary
    # is well under 4 KiB at the default --depth and about 60 KiB at the largest.
    ("grpc.max_receive_message_length", 64 * 1024),
    ("grpc.max_send_message_length", 1024 * 1024),
)

IDLE_TIMEOUT = 60.0
"""Seconds a connection may stay open with no call before it is closed."""

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a new connection gets to finish its TLS handshake and send its HTTP/2 settings before it is closed: a
few round trips, so ample for any client, and well inside :data:`IDLE_TIMEOUT`, the bound documented for
connections that open no stream."""

RPC_RESERVE = 64
"""RPCs allowed beyond ``max_streams`` (grpcio's overall bound): health checks, reflection and ``Symbols`` while
every book stream is taken. The larger of this and a tenth of ``max_streams``."""

SHOWN_SYMBOL = 40
"""Characters of an unknown symbol repeated in the NOT_FOUND detail: a client chooses its length."""

_Request = TypeVar("_Request", bound=Message)

LOG_EVERY = 60.0
"""Seconds between two log lines about the same kind of refused request (each says how many there were)."""

MALFORMED = "malformed_request"
"""The throttle's key for requests that do not parse, logged together whichever method they were sent to."""


def default_streams_per_connection(max_streams: int) -> int:
    """A fair share: a tenth of ``max_streams``, at least 1."""
    return max(1, max_streams // 10)


class ParseInHandler(grpc.ServerInterceptor):
    """Serves every method with a request deserializer from raw bytes instead, parsing them before its handler
    runs: a request that does not parse gets INVALID_ARGUMENT (and a throttled log line) and keeps no memory.
    grpcio's own failure path (the deserializer raising inside grpcio) keeps about 20 KB a call, never freed,
    and logs a traceback for each."""

    def __init__(self, refusals: LogThrottle) -> None:
        self._refusals = refusals

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse, method, refusals = handler.request_deserializer, handler_call_details.method, self._refusals

        def parsed(raw: bytes, context: grpc.ServicerContext) -> object:
            try:
                return parse(raw)
            except Exception as error:  # noqa: BLE001 - whatever the deserializer raises, the request is malformed
                refusals.log(log, logging.WARNING, MALFORMED, "malformed request to %s from %s refused: %s", method,
                             context.peer(), error)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {method} request")

        if handler.request_streaming:
            kind = "stream_stream" if handler.response_streaming else "stream_unary"
            behaviour = getattr(handler, kind)

            def on_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> object:
                return behaviour((parsed(raw, context) for raw in requests), context)

            return handler._replace(request_deserializer=None, **{kind: on_stream})
        kind = "unary_stream" if handler.response_streaming else "unary_unary"
        behaviour = getattr(handler, kind)

        def on_request(raw: bytes, context: grpc.ServicerContext) -> object:
            return behaviour(parsed(raw, context), context)

        return handler._replace(request_deserializer=None, **{kind: on_request})


class ServerStartError(Exception):
    """The server could not start; the message is one line fit for the user."""


class ListenError(ServerStartError):
    """The address itself cannot be listened on (taken, unresolvable, not this host's). ``address`` and ``reason``
    are kept apart so that a command can name the setting the address came from (``--grpc-addr 127.0.0.1:5002:
    address already in use``, or ``ORDERBOOK_GRPC_ADDR ...``): the user must know which of their settings to
    change, and this module does not know how it was given."""

    def __init__(self, address: Address, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


class AddressInUse(ListenError):
    """Something already listens on the address."""

    def __init__(self, address: Address) -> None:
        super().__init__(address, "address already in use")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for a TLS listener: the certificate chain and its private key."""

    cert_path: Path
    key_path: Path

    def credentials(self) -> grpc.ServerCredentials:
        try:
            cert = self.cert_path.read_bytes()
            key = self.key_path.read_bytes()
        except OSError as exc:
            raise ServerStartError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from exc
        return grpc.ssl_server_credentials([(key, cert)])


def _bind_failure(address: Address, tls: TlsFiles | None, reuse_port: bool) -> ServerStartError:
    """grpc only says "Failed to bind"; bind a plain socket the same way to learn and report why. With
    ``reuse_port`` the probe shares the port too: the book process's reservation and the sibling serving
    processes hold it, and a probe without SO_REUSEPORT would report any failure (a rejected TLS certificate)
    as "address already in use"."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return ListenError(address, f"cannot resolve {address.host!r} ({exc.strerror})")
    refused = None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return AddressInUse(address)
                refused = exc.strerror or str(exc)
    if refused is not None:
        return ListenError(address, refused)
    if tls is not None:
        reason = f"the TLS certificate {tls.cert_path} or key {tls.key_path} was rejected (not PEM, or not a pair)"
    else:
        reason = "grpc refused it (GRPC_VERBOSITY=ERROR shows its reason)"
    return ServerStartError(f"cannot listen on {address}: {reason}")


class GrpcServer:
    """Serves every symbol's books (``served``) to ``Book`` and ``BookSummary`` streams, and ``Symbols``; and
    ``quotes`` to ``Quote`` streams (None: answered UNIMPLEMENTED, :data:`NO_QUOTES_HERE`)."""

    def __init__(
        self,
        served: Books,
        address: Address,
        *,
        max_streams: int = 1000,
        max_streams_per_connection: int | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        tls: TlsFiles | None = None,
        reuse_port: bool = False,
        quotes: ServedQuotes | None = None,
    ) -> None:
        """Every value as the configuration checked it (:mod:`orderbook.config`): none is checked again here.
        ``max_streams`` bounds the Book, BookSummary and Quote streams together, ``max_streams_per_connection``
        (default a tenth of ``max_streams``) the streams of one HTTP/2 connection; ``idle_timeout`` closes
        connections with no call.
        ``reuse_port`` lets several server processes share one port; off by default so that a port that is
        already taken is reported instead of silently shared (grpcio turns SO_REUSEPORT on by default)."""
        if max_streams_per_connection is None:
            max_streams_per_connection = default_streams_per_connection(max_streams)
        self._served = served
        self._quotes = quotes
        self._address = address
        self._max_streams = max_streams
        self._max_streams_per_connection = max_streams_per_connection
        self._idle_timeout = idle_timeout
        self._book_streams = 0
        self._refusals = LogThrottle(LOG_EVERY)
        self._tls = tls
        self._reuse_port = reuse_port
        self._health = health.HealthServicer()
        self._executor = GreenletExecutor()
        self._server: grpc.Server | None = None
        self._port: int | None = None
        self._stopped = False
        self.set_serving(False)  # until the owner says the book is in step

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._port is None:
            raise RuntimeError("the server has not been started")
        return self._port

    @property
    def active_calls(self) -> int:
        """RPCs running now, each in its own greenlet (streams, health checks, reflection)."""
        return self._executor.running

    def stats(self) -> ServingStats:
        stats = self._served.stats()
        stats.active_calls = self.active_calls
        if self._quotes is not None:
            stats.quote_streams = self._quotes.open_streams
            stats.quote_updates_sent = self._quotes.sent_total
        return stats

    def start(self) -> None:
        """Bind and start serving; raise :class:`ServerStartError` (or a subclass) with the address on failure."""
        if self._server is not None:
            raise RuntimeError("the server was already started")
        credentials = self._tls.credentials() if self._tls is not None else None
        options = [
            *_SERVER_OPTIONS,
            ("grpc.so_reuseport", int(self._reuse_port)),
            ("grpc.max_concurrent_streams", self._max_streams_per_connection),
            ("grpc.max_connection_idle_ms", int(self._idle_timeout * 1000)),
            ("grpc.server_handshake_timeout_ms", int(HANDSHAKE_TIMEOUT * 1000)),
        ]
        server = grpc.server(
            self._executor,  # type: ignore[arg-type]  # any Executor serves; the stub asks a ThreadPoolExecutor
            handlers=[self._summary_handler(), self._streams_handler(), self._quotes_handler()],
            options=options,
            interceptors=[ParseInHandler(self._refusals)],
            maximum_concurrent_rpcs=self._max_streams + max(RPC_RESERVE, self._max_streams // 10),
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        served_quotes = (QUOTES_SERVICE_NAME,) if self._quotes is not None else ()
        reflection.enable_server_reflection(
            (SERVICE_NAME, STREAMS_SERVICE_NAME, *served_quotes, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        try:
            if credentials is None:
                bound = server.add_insecure_port(str(self._address))
            else:
                bound = server.add_secure_port(str(self._address), credentials)
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise _bind_failure(self._address, self._tls, self._reuse_port)
        server.start()
        self._server, self._port = server, bound
        log.info(
            "gRPC serving %s on %s port %s (%s, at most %s streams, %s per connection; idle connections closed "
            "after %gs, unfinished handshakes after %gs)",
            SERVICE_NAME,
            self._address.host,
            bound,
            "TLS" if credentials is not None else "plaintext",
            self._max_streams,
            self._max_streams_per_connection,
            self._idle_timeout,
            HANDSHAKE_TIMEOUT,
        )

    def set_serving(self, serving: bool) -> None:
        """Report SERVING (the book is being served) or NOT_SERVING through grpc.health.v1."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in (SERVICE_NAME, health.OVERALL_HEALTH):
            self._health.set(name, status)

    def stop(self, grace: float) -> None:
        """End every stream with UNAVAILABLE (the server is shutting down: a normal end would tell the client the
        book had ended), then stop within ``grace`` seconds."""
        if self._stopped:
            return
        self._stopped = True
        self._served.close()
        if self._quotes is not None:
            self._quotes.close()
        self._health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace).wait()
            log.info("gRPC server on port %s stopped", self._port)

    def _summary_handler(self) -> grpc.GenericRpcHandler:
        # No request_deserializer: the raw bytes reach the method, which parses them (see the module docstring).
        method: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(
            self._book_summary,
            request_deserializer=None,
            response_serializer=_already_serialized,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {METHOD_NAME: method})

    def _streams_handler(self) -> grpc.GenericRpcHandler:
        book: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(
            self._book, request_deserializer=None, response_serializer=_already_serialized)
        symbols: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
            self._symbols, request_deserializer=None, response_serializer=_already_serialized)
        return grpc.method_handlers_generic_handler(STREAMS_SERVICE_NAME, {"Book": book, "Symbols": symbols})

    def _quotes_handler(self) -> grpc.GenericRpcHandler:
        quote: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(
            self._quote, request_deserializer=None, response_serializer=_already_serialized)
        return grpc.method_handlers_generic_handler(QUOTES_SERVICE_NAME, {"Quote": quote})

    def _parse(self, message: type[_Request], request: bytes, path: str, context: grpc.ServicerContext) -> _Request:
        try:
            return message.FromString(request)
        except DecodeError as error:
            self._refusals.log(log, logging.WARNING, MALFORMED, "malformed request to %s from %s refused: %s", path,
                               context.peer(), error)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"the request is not an {message.DESCRIPTOR.full_name} message")

    def _book_summary(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self._parse(orderbook_pb2.Empty, request, METHOD_PATH, context)
        yield from self._stream(partial(self._served.stream, "", 0), context, METHOD_NAME,
                                f"all {self._max_streams} BookSummary streams are taken; try again later")

    def _book(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        asked = self._parse(orderbook_streams_pb2.BookRequest, request, BOOK_PATH, context)
        try:
            self._served.resolve(asked.symbol, asked.depth)
        except Unavailable as unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(unavailable))
        except UnknownSymbol:
            self._unknown_symbol(asked.symbol, context)
        except DepthNotServed:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"depth {asked.depth} is more than the "
                          f"{self._served.depth} levels a side this server serves (ask for 1 to "
                          f"{self._served.depth}, or 0 for all)")
        # As asked: a stream of the default symbol ("") ends when the default becomes another symbol.
        yield from self._stream(partial(self._served.stream, asked.symbol, asked.depth), context, "Book",
                                self._all_taken())

    def _quote(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        asked = self._parse(orderbook_quotes_pb2.QuoteRequest, request, QUOTE_PATH, context)
        quotes = self._quotes
        if quotes is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, NO_QUOTES_HERE)
        try:
            key = quotes.key(asked)
        except Unavailable as unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(unavailable))
        except UnknownSymbol:
            self._unknown_symbol(asked.symbol, context)
        except BadQuoteRequest as bad:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(bad))
        yield from self._stream(partial(quotes.stream, key), context, "Quote", self._all_taken())

    def _all_taken(self) -> str:
        return f"all {self._max_streams} streams (Book, BookSummary and Quote together) are taken; try again later"

    def _unknown_symbol(self, symbol: str, context: grpc.ServicerContext) -> NoReturn:
        shown = symbol if len(symbol) <= SHOWN_SYMBOL else symbol[:SHOWN_SYMBOL] + "..."
        context.abort(grpc.StatusCode.NOT_FOUND, f"unknown symbol {shown!r}: this server serves "
                      f"{len(self._served.symbols)} symbols, listed by Symbols")

    def _symbols(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._parse(orderbook_pb2.Empty, request, SYMBOLS_PATH, context)
        if self._served.unavailable is not None:
            context.abort(grpc.StatusCode.UNAVAILABLE, self._served.unavailable)
        return symbol_list(self._served.states())

    def _stream(self, stream: Callable[[Callable[[], bool], Event], Iterator[bytes]], context: grpc.ServicerContext,
                method: str, refusal: str) -> Iterator[bytes]:
        """One stream (``stream(is_active, wake_up)``: a book's or a quote's), counted against ``max_streams``
        (refused with ``refusal`` beyond it). Ends with
        UNAVAILABLE whenever the books go on without it (:mod:`orderbook.serving.symbols`: the server stops, the
        books are suspended, ...): the client should go elsewhere."""
        if self._served.unavailable is not None:
            context.abort(grpc.StatusCode.UNAVAILABLE, self._served.unavailable)
        if self._book_streams >= self._max_streams:
            self._refusals.log(log, logging.WARNING, "stream_refused", "%s stream from %s refused: all %d streams are "
                               "taken", method, context.peer(), self._max_streams)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        self._book_streams += 1
        try:
            # A client that cancels wakes its own stream so it ends now, not at its next timed re-check.
            wake_up = SummaryBroadcaster.waker()
            context.add_callback(wake_up.set)
            peer = context.peer()
            log.debug("stream opened for %s", peer)
            try:
                yield from stream(context.is_active, wake_up)
            except Unavailable as unavailable:
                context.abort(grpc.StatusCode.UNAVAILABLE, str(unavailable))
            finally:
                log.debug("stream closed for %s", peer)
        finally:
            self._book_streams -= 1


def _already_serialized(payload: bytes) -> bytes:
    """The broadcasters hand out Summary bytes serialized once for all streams; SymbolList comes serialized too."""
    return payload
