"""A serving process (``--serve-processes N`` starts N): gRPC streams fed by the book process over a link.

    python -m orderbook.serving.worker --link-fd FD --grpc-addr HOST:PORT --symbols A,B --depth N ...

It binds the service's gRPC address with SO_REUSEPORT beside its siblings (the kernel spreads new connections
over them), reports ``ready`` or the bind error, then publishes every symbol's summary and state that arrive on
the link to its own :class:`~orderbook.serving.symbols.ServedSymbols` (which cuts the shallower depths its ``Book``
streams ask for from the full summary) and reports its figures every second. Its ``Quote`` streams are computed
by the book process, which alone holds every level: each quote's first stream here asks for its updates up the
link, and they come back as QUOTE frames (:mod:`orderbook.serving.quotes`). When the link closes (the book
process stopped or died) it ends its streams with UNAVAILABLE, as the book process would, and exits: it never
serves a book nobody keeps in step. SIGINT is ignored (a Ctrl-C reaches the whole process group; the book process
decides); SIGTERM stops it.
"""

from orderbook.boot import boot

boot()  # first: see orderbook.boot

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402

from orderbook.address import Address  # noqa: E402
from orderbook.logs import configure_logging  # noqa: E402
from orderbook.serving import link  # noqa: E402
from orderbook.serving.grpc_server import GrpcServer, ServerStartError, TlsFiles  # noqa: E402
from orderbook.serving.quotes import ServedQuotes  # noqa: E402
from orderbook.serving.symbols import ServedSymbols, UnknownSymbol  # noqa: E402

log = logging.getLogger("orderbook.serving.worker")

STATS_INTERVAL = 1.0
EXIT_LINK_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderbook.serving.worker", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--link-fd", type=int, required=True, help="the inherited socket to the book process")
    add("--grpc-addr", type=Address.parse, required=True)
    add("--symbols", required=True, type=lambda text: text.split(","), help="the book's symbols, the default first")
    add("--depth", type=int, required=True, help="the most levels a side (the book's --depth)")
    add("--max-streams", type=int, default=1000)
    add("--max-streams-per-connection", type=int, default=None, help="default a tenth of --max-streams")
    add("--tls-cert")
    add("--tls-key")
    add("--grace", type=float, default=1.0, help="seconds the streams get to end when the link closes")
    add("--log-level", default="info")
    add("--log-format", default="text")
    return parser


class ServingProcess:
    def __init__(self, args: argparse.Namespace) -> None:
        self.link = socket.socket(fileno=args.link_fd)
        self.reader = self.link.makefile("rb")
        self.send_turn = Semaphore(1)  # the stats and the quotes asked for never interleave on the link
        self.served = ServedSymbols(args.symbols, args.depth)
        self.quotes = ServedQuotes(self.served, opened=partial(self._ask_quote, True),
                                   closed=partial(self._ask_quote, False))
        tls = TlsFiles(Path(args.tls_cert), Path(args.tls_key)) if args.tls_cert and args.tls_key else None
        self.server = GrpcServer(self.served, args.grpc_addr, max_streams=args.max_streams,
                                 max_streams_per_connection=args.max_streams_per_connection, tls=tls,
                                 reuse_port=True, quotes=self.quotes)
        self.grace = args.grace
        self.terminated = False

    def run(self) -> int:
        try:
            self.server.start()
        except ServerStartError as error:
            link.send_message(self.link, {"error": str(error)})
            return EXIT_LINK_ERROR
        link.send_message(self.link, {"ready": self.server.port})
        reporter = gevent.spawn(self._report_stats)
        try:
            return self._follow_link()
        finally:
            reporter.kill()
            self.server.stop(self.grace)

    def stop(self) -> None:
        """SIGTERM: end as if the link had closed."""
        self.terminated = True
        self.link.shutdown(socket.SHUT_RD)  # gevent wakes the reading greenlet with EBADF, not an end of stream

    def _follow_link(self) -> int:
        try:
            while (message := link.read_frame(self.reader)) is not None:
                self._apply(*message)
        except (link.LinkError, OSError) as error:
            if self.terminated and isinstance(error, OSError):
                log.info("serving process %d: SIGTERM; stopping", os.getpid())
                return 0
            log.error("serving process %d: link to the book process broken: %s", os.getpid(), error)
            return EXIT_LINK_ERROR
        log.info("serving process %d: the book process closed the link; stopping", os.getpid())
        return 0

    def _apply(self, kind: int, payload: bytes, published_at: float) -> None:
        try:
            if kind == link.SUMMARY:
                symbol, summary = link.split_summary(payload)
                self.served.publish_summary(symbol, summary, published_at)
            elif kind == link.STATE:
                self.served.set_state(link.read_state(payload))
            elif kind == link.QUOTE:
                self.quotes.publish(*link.split_quote(payload), published_at)  # a key no longer streamed: ignored
            else:
                self.server.set_serving(payload == b"\x01")
        except (UnknownSymbol, ValueError) as error:  # a symbol the book process did not start this one with, ...
            raise link.LinkError(f"frame of kind {kind} refused: {error!r}") from None

    def _report_stats(self) -> None:
        while True:
            gevent.sleep(STATS_INTERVAL)
            try:
                self._send({"stats": self.server.stats().to_json()})
            except OSError:
                return

    def _ask_quote(self, open_: bool, key: bytes) -> None:
        """Ask the book process for the updates of the quote ``key`` (its first stream here opened), or stop them."""
        try:
            self._send(link.quote_message(key, open_))
        except OSError:
            pass  # the link is gone: this process is stopping, and its streams end

    def _send(self, message: dict[str, object]) -> None:
        with self.send_turn:
            link.send_message(self.link, message)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    process = ServingProcess(args)
    gevent.signal_handler(signal.SIGTERM, process.stop)
    return process.run()


if __name__ == "__main__":
    sys.exit(main())
