"""The ``/metrics`` endpoint: a small HTTP server that careless or hostile clients cannot stall or exhaust.

prometheus-client's ``start_http_server`` is a ``ThreadingHTTPServer``: its listen backlog is 5 (200 parallel
scrapers saw a p99 of 3.3 s, and timeouts), it never times out a connection that sends nothing (each one holds a
thread, here a greenlet, for ever), and it starts a scrape for every request however many are running. This one
keeps the same exposition (``choose_encoder`` for the Accept header, gzip when accepted, ``name[]`` filters)
and bounds everything else:

* a listen backlog of :attr:`HttpLimits.backlog`, so a burst of connections waits in the kernel, not refused;
* at most :attr:`HttpLimits.max_connections` connections handled at once (a gevent ``Pool``: when it is full
  the server stops accepting until one ends, and the rest wait in the backlog);
* the whole request head must arrive within :attr:`HttpLimits.head_timeout` seconds (one deadline for the head,
  not per read: a slowloris trickling a byte a second is closed too) and fit in :attr:`HttpLimits.max_head_bytes`;
* scrapes that arrive together share one exposition (its build starts after each of them arrived, so none is stale);
  at most :attr:`HttpLimits.max_builds` different ones are built at once, beyond that the answer is 503 at
  once, since a scraper that is told to retry costs less than one that queues;
* one request per connection (``Connection: close``), the response written within
  :attr:`HttpLimits.write_timeout`;
* a failing request is answered (or dropped) and logged; it never takes the server down.

Why gevent rather than threads: the service is a monkey-patched gevent process, where "threads" are greenlets
anyway, and the collectors read objects that the hub's greenlets own. ``gevent.server.StreamServer`` with a
``Pool`` gives the connection bound and the accept back-pressure for free; the scrape itself runs in the hub as
every other piece of the service does. An exposition is CPU work only, but not always short: at 500 symbols it is
some 9,000 lines, 50-80 ms of building, during which no frame was read and no summary sent. It passes the hub a
turn between metric families once it has worked :attr:`HttpLimits.build_turn` (:class:`_TurnTaking`), and gzip
compresses in gevent's thread pool (zlib lets the GIL go), so a scrape delays the feeds and streams by about one
family's formatting, not the whole exposition.
"""

from __future__ import annotations

import collections
import gzip
import logging
import socket as stdlib_socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import gevent
import gevent.event
import gevent.pool
import gevent.server
from gevent import socket as gsocket
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
_INDEX = b"Order book service. Metrics: /metrics\n"
_ALLOW = "GET, HEAD"
_DRAIN_SECONDS = 1.0
_DRAIN_BYTES = 65536


@dataclass(frozen=True, slots=True)
class HttpLimits:
    backlog: int = 1024
    """listen(2) backlog (the kernel caps it at net.core.somaxconn, 4096 on current Linux)."""
    max_connections: int = 512
    """Connections handled at once, idle ones included; more wait in the backlog (file descriptors are finite)."""
    max_builds: int = 16
    """Expositions built at once. A scrape that can share one already waiting to be built (same Accept,
    Accept-Encoding and query) always joins it; one that would need a 17th is answered 503, Retry-After: 1."""
    head_timeout: float = 5.0
    """Seconds for the whole request line and headers to arrive, from accept."""
    write_timeout: float = 10.0
    """Seconds to write one response (a client that does not read is dropped)."""
    max_head_bytes: int = 8192
    """Request line and headers together; larger ones are answered 431."""
    build_turn: float = 0.002
    """Seconds an exposition is built before it lets the other greenlets run (between two metric families), as a
    feed's reader does between frames."""


class _Rejected(Exception):
    """A request answered with an error status (and counted under ``outcome``)."""

    def __init__(self, status: str, outcome: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(status)
        self.status, self.outcome, self.body, self.headers = status, outcome, body, headers


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]


class MetricsHttpServer:
    """Serves ``registry`` on ``GET /metrics`` at ``host:port`` (port 0: any free port, read back from
    :attr:`port`). :meth:`start` binds (raising ``OSError`` for an address in use) and returns at once;
    :meth:`stop` closes the listener and every connection."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, limits: HttpLimits = HttpLimits()) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self.limits = limits
        self.outcomes: collections.Counter[str] = collections.Counter()
        """Requests by outcome (served, busy, timeout, too_large, bad_request, not_found, method, error...)."""
        self.builds_in_progress = 0
        """Expositions waiting to be built or being built (at most :attr:`HttpLimits.max_builds`)."""
        self._batches: dict[tuple[str, bool, str], gevent.event.AsyncResult] = {}  # waiting for a build
        self._running: dict[tuple[str, bool, str], gevent.event.AsyncResult] = {}  # being built
        self._server: gevent.server.StreamServer | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return self._server.socket.getsockname()[1]

    def start(self) -> None:
        listener = _listener(self.host, self.requested_port, self.limits.backlog)
        self._server = gevent.server.StreamServer(listener, self._handle,
                                                  spawn=gevent.pool.Pool(self.limits.max_connections))
        self._server.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting, let requests in progress finish for up to ``timeout`` s, then drop the rest."""
        if self._server is not None:
            self._server.stop(timeout)

    # -- one connection ----------------------------------------------------------------------------------------

    def _handle(self, sock: gsocket.socket, _address: object) -> None:
        try:
            self._serve(sock)
        except Exception:  # a bug or an unexpected socket error must cost one connection, never the server
            self.outcomes["error"] += 1
            log.warning("metrics request failed", exc_info=True)

    def _serve(self, sock: gsocket.socket) -> None:
        try:
            request = self._read_request_in_time(sock)
            if request is None:  # closed before a full head: a TCP health check, a port scanner
                self.outcomes["closed"] += 1
                return
            status, body, headers, outcome = self._route(request)
        except _Rejected as rejected:
            self._respond(sock, rejected.status, rejected.body, rejected.headers, outcome=rejected.outcome)
            return
        except OSError:  # reset by the client: nobody to answer
            self.outcomes["reset"] += 1
            return
        self._respond(sock, status, b"" if request.method == "HEAD" else body, headers, outcome=outcome,
                      length=len(body))

    def _read_request_in_time(self, sock: gsocket.socket) -> _Request | None:
        """One deadline for the whole head, not one per read: a client trickling a byte at a time is cut off too."""
        with gevent.Timeout(self.limits.head_timeout) as deadline:
            try:
                return self._read_request(sock)
            except gevent.Timeout as expired:
                if expired is not deadline:
                    raise
        raise _Rejected("408 Request Timeout", "timeout", b"request head not received in time\n")

    def _read_request(self, sock: gsocket.socket) -> _Request | None:
        head = bytearray()
        limit = self.limits.max_head_bytes
        while True:
            end = _head_end(head)
            if end is not None:
                break
            if len(head) > limit:
                raise _Rejected("431 Request Header Fields Too Large", "too_large", b"request head too large\n")
            chunk = sock.recv(4096)
            if not chunk:
                return None
            head += chunk
        if end > limit:
            raise _Rejected("431 Request Header Fields Too Large", "too_large", b"request head too large\n")
        return _parse_head(bytes(head[:end]))

    def _route(self, request: _Request) -> tuple[str, bytes, tuple[tuple[str, str], ...], str]:
        if request.method not in ("GET", "HEAD"):
            raise _Rejected("405 Method Not Allowed", "method", b"use GET or HEAD\n", (("Allow", _ALLOW),))
        if request.path == "/":
            return "200 OK", _INDEX, (("Content-Type", "text/plain; charset=utf-8"),), "index"
        if request.path != METRICS_PATH:
            raise _Rejected("404 Not Found", "not_found", b"not found; the metrics are at /metrics\n")
        try:
            body, headers = self._shared_exposition(request)
        except _Rejected:
            raise
        except Exception:
            log.warning("metrics exposition failed", exc_info=True)
            raise _Rejected("500 Internal Server Error", "error", b"the exposition failed; see the service log\n") \
                from None
        return "200 OK", body, headers, "served"

    def _shared_exposition(self, request: _Request) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        """The exposition built once for every request of the same kind that is waiting for one.

        Building it costs the service ~2 ms of the hub; 100 scrapers back to back would each wait for the other
        99 builds (p50 0.28 s). Requests that arrive before a build starts share it, so none is served a value
        older than its own arrival, and a storm costs one build per turn of the loop rather than one per request.
        """
        key = (request.headers.get("accept", ""), "gzip" in request.headers.get("accept-encoding", "").lower(),
               request.query)
        batch = self._batches.get(key)
        if batch is None:
            if self.builds_in_progress >= self.limits.max_builds:
                raise _Rejected("503 Service Unavailable", "busy", b"too many scrapes at once; retry\n",
                                (("Retry-After", "1"),))
            batch = self._batches[key] = gevent.event.AsyncResult()
            self.builds_in_progress += 1
            gevent.spawn(self._build, key, request, batch, self._running.get(key))
        built = batch.get()
        assert built is not None  # a blocking get() returns the value (the stub says it may be None) or raises
        return built

    def _build(self, key: tuple[str, bool, str], request: _Request, batch: gevent.event.AsyncResult,
               previous: gevent.event.AsyncResult | None) -> None:
        """One build of a kind at a time: the requests that arrive meanwhile wait for the next one, together."""
        try:
            if previous is not None:
                previous.wait()
            del self._batches[key]  # later arrivals start the next build
            self._running[key] = batch
            batch.set(self._exposition(request))
        except Exception as error:  # noqa: BLE001 - not swallowed: each waiter of the batch raises it
            batch.set_exception(error)
        finally:
            self.builds_in_progress -= 1
            if self._running.get(key) is batch:
                del self._running[key]

    def _exposition(self, request: _Request) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        """As prometheus-client's own handler builds it: format from Accept, ``name[]`` filters, gzip if accepted."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        registry: Collector = self.registry
        names = parse_qs(request.query).get("name[]")
        if names:
            registry = self.registry.restricted_registry(names)
        output = encoder(_TurnTaking(registry, self.limits.build_turn))
        headers: tuple[tuple[str, str], ...] = (("Content-Type", content_type),)
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            output = gevent.get_hub().threadpool.apply(gzip.compress, (output,))
            headers += (("Content-Encoding", "gzip"),)
        return output, headers

    def _respond(self, sock: gsocket.socket, status: str, body: bytes, headers: tuple[tuple[str, str], ...] = (),
                 outcome: str | None = None, length: int | None = None) -> None:
        """Write the response, then half-close and drain what the client may still send (closing with unread
        input would reset the connection, and the client could lose the response)."""
        if outcome is not None:
            self.outcomes[outcome] += 1
        if not any(name == "Content-Type" for name, _ in headers):
            headers += (("Content-Type", "text/plain; charset=utf-8"),)
        lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers),
                 f"Content-Length: {len(body) if length is None else length}", "Connection: close", "", ""]
        # Timeout(seconds, False) is gevent's documented silent timeout, which types-gevent's stub leaves out.
        with gevent.Timeout(self.limits.write_timeout, False):  # type: ignore[arg-type]
            try:
                sock.sendall("\r\n".join(lines).encode("latin-1") + body)
                sock.shutdown(stdlib_socket.SHUT_WR)
            except OSError:
                return
        with gevent.Timeout(_DRAIN_SECONDS, False):  # type: ignore[arg-type]
            try:
                drained = 0
                while drained < _DRAIN_BYTES and (chunk := sock.recv(4096)):
                    drained += len(chunk)
            except OSError:
                pass


class _TurnTaking:
    """``registry``'s metric families, for an encoder to format one after another, with the hub passed a turn
    whenever ``turn`` seconds have gone on collecting and formatting them since the last: the encoder formats each
    family before it asks for the next, so the pause falls between two families, and the exposition is the same
    bytes (each family as it is when collected, as with several threads scraping prometheus-client)."""

    def __init__(self, registry: Collector, turn: float) -> None:
        self._registry = registry
        self._turn = turn

    def collect(self) -> Iterator[Metric]:
        clock = time.perf_counter
        turn_taken = clock()
        for family in self._registry.collect():
            yield family
            if clock() - turn_taken >= self._turn:
                gevent.sleep(0)
                turn_taken = clock()


def _head_end(head: bytearray) -> int | None:
    """Length of the request head (through its blank line) if it has all arrived; bare LFs are tolerated."""
    ends = [index + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (index := head.find(mark)) >= 0]
    return min(ends) if ends else None


def _parse_head(head: bytes) -> _Request:
    lines = head.decode("latin-1").splitlines()
    parts = lines[0].split() if lines else []
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Rejected("400 Bad Request", "bad_request", b"not an HTTP/1.x request\n")
    method, target, _ = parts
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    url = urlsplit(target)
    return _Request(method, url.path or "/", url.query, headers)


def _listener(host: str, port: int, backlog: int) -> gsocket.socket:
    """A listening gevent socket for ``host:port`` (IPv4 or IPv6, by what the host resolves to first)."""
    family, kind, proto, _, address = gsocket.getaddrinfo(host or None, port, 0, gsocket.SOCK_STREAM, 0,
                                                          gsocket.AI_PASSIVE)[0]
    sock = gsocket.socket(family, kind, proto)
    try:
        sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
