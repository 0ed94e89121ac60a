"""A GrpcServer in its own gevent process, for the serving tests (run as a script, not collected by pytest).

It serves the ``--symbols`` (default ETHBTC; the first is the default symbol) from one process, or from
``--serve-processes N`` serving processes fed by this one as the service does. Prints ``PORT <n>`` once listening
(or ``ERROR <kind>: <message>`` and exits 2), then publishes synthetic summaries of every symbol every
``--interval`` seconds (with ``--interval 0``, only on command). Summary number n has its first bid amount equal
to n, so a client can tell which summaries it saw and which it skipped; the i-th symbol's prices are i above the
first one's (its best bid is i + 0.05123).
Stdin commands, one per line, each answered "OK": ``publish [SYMBOL]`` (the next summary), ``deep [SYMBOL]`` (the
same summary with only its last ask changed), ``empty`` (a summary with no asks), ``state SYMBOL VENUES IN_STEP``
(comma-separated venues, ``-`` for none), ``serving on|off``, ``catalogue SYMBOLS`` (serve the configured
symbols in this order, as an edge does when its leader's catalogue changes: the first becomes the default; one
process only), ``stats`` (prints ``STATS {json}`` with the streams' counters).
Quotes (``OrderbookQuotes.Quote``) are walked over books of the helper's own, set by command: ``book SYMBOL VENUE
BIDS ASKS`` (``PRICE:AMOUNT,...``, ``-`` for none) puts the venue's book in step, ``detach SYMBOL VENUE`` takes
it out; each is a change of the symbol's books. ``--taker-fee`` as the server's; ``--no-quotes`` serves no quotes
(as an edge).
SIGTERM, SIGINT or the end of stdin stops the server (grace 1 s) and exits 0.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from orderbook.boot import boot

READY_FIRST = boot()  # first: see orderbook.boot

from pathlib import Path  # noqa: E402

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.fileobject import FileObjectThread  # noqa: E402

from orderbook.address import Address  # noqa: E402
from orderbook.book import PriceLevel, VenueBook  # noqa: E402
from orderbook.config import parse_taker_fees  # noqa: E402
from orderbook.consolidated import ConsolidatedBook  # noqa: E402
from orderbook.merge import Level, MergedTop  # noqa: E402
from orderbook.prices import SCALE, parse_decimal  # noqa: E402
from orderbook.serving.fanout import ServingProcesses, WorkerSettings  # noqa: E402
from orderbook.serving.grpc_server import GrpcServer, ServerStartError, TlsFiles  # noqa: E402
from orderbook.serving.quotes import BookQuotes  # noqa: E402
from orderbook.serving.symbols import ServedSymbols  # noqa: E402
from orderbook.symbol_state import SymbolState  # noqa: E402


def synthetic_top(number: int, depth: int, offset: int = 0, last_ask: int = 2) -> MergedTop:
    """Bids from 0.05123 down, asks from 0.05124 up (spread 0.00001), each ``offset`` higher; first bid amount =
    ``number``, last ask amount ``last_ask``."""
    tick, up = parse_decimal("0.00001"), offset * SCALE
    bids = [Level("binance", parse_decimal("0.05123") + up, number * SCALE)]
    bids += [Level("bitstamp", parse_decimal("0.05122") + up - i * tick, SCALE // 2) for i in range(depth - 1)]
    asks = [
        Level("bitstamp" if i % 2 else "binance", parse_decimal("0.05124") + up + i * tick,
              (last_ask if i == depth - 1 else 2) * SCALE)
        for i in range(depth)
    ]
    return MergedTop(asks[0].price - bids[0].price, tuple(bids), tuple(asks))


def venues(text: str) -> tuple[str, ...]:
    return () if text == "-" else tuple(text.split(","))


def levels(text: str) -> list[PriceLevel]:
    if text == "-":
        return []
    return [(parse_decimal(price), parse_decimal(amount))
            for price, amount in (level.split(":") for level in text.split(","))]


def main() -> int:  # noqa: C901
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", type=Address.parse, default=Address("127.0.0.1", 0))
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--max-streams", type=int, default=1000)
    parser.add_argument("--max-streams-per-connection", type=int)
    parser.add_argument("--idle-timeout", type=float, default=60.0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--fd-limit", type=int, help="lower the open-file limit to this (to test running out)")
    parser.add_argument("--symbols", default="ETHBTC")
    parser.add_argument("--serve-processes", type=int, default=0)
    parser.add_argument("--taker-fee", default="")
    parser.add_argument("--no-quotes", action="store_true")
    args = parser.parse_args()
    if args.fd_limit:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.fd_limit, hard))

    tls = TlsFiles(Path(args.tls_cert), Path(args.tls_key)) if args.tls_cert else None
    symbols = args.symbols.split(",")
    served = ServedSymbols(symbols, args.depth, recheck_interval=0.5)
    books = {symbol: ConsolidatedBook(("binance", "bitstamp"), args.depth) for symbol in symbols}
    quotes = BookQuotes(served, books, dict(parse_taker_fees(args.taker_fee, "--taker-fee")), recheck_interval=0.5)
    served_quotes = None if args.no_quotes else quotes.quotes
    if args.serve_processes:
        settings = WorkerSettings(args.max_streams, tls, "info", "text",
                                  max_streams_per_connection=args.max_streams_per_connection)
        server: GrpcServer | ServingProcesses = ServingProcesses(served, args.address, args.serve_processes, settings,
                                                                 quotes=served_quotes)
    else:
        server = GrpcServer(served, args.address, max_streams=args.max_streams,
                            max_streams_per_connection=args.max_streams_per_connection,
                            idle_timeout=args.idle_timeout, tls=tls, quotes=served_quotes)
    try:
        server.start()
    except ServerStartError as error:
        print(f"ERROR {type(error).__name__}: {error}", flush=True)
        return 2
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    counter = iter(range(1, 1 << 62))
    last = dict.fromkeys(symbols, 0)

    def publish(symbol: str, deep: bool = False) -> None:
        if not deep:
            last[symbol] = next(counter)
        top = synthetic_top(last[symbol], args.depth, symbols.index(symbol), last_ask=next(counter) if deep else 2)
        served.publish(symbol, top)

    def publish_steadily() -> None:
        while True:
            for symbol in symbols:
                publish(symbol)
            gevent.sleep(args.interval)

    def obey_stdin() -> None:
        for line in FileObjectThread(sys.stdin):  # type: ignore[arg-type]  # a file object: gevent wraps it
            command = line.split()
            if command[:1] in (["publish"], ["deep"]):
                publish(command[1] if command[1:] else served.default, deep=command[0] == "deep")
            elif command == ["empty"]:
                top = synthetic_top(next(counter), args.depth)
                served.publish(served.default, MergedTop(None, top.bids, ()))
            elif command[:1] == ["state"]:
                served.set_state(SymbolState(command[1], venues(command[2]), venues(command[3])))
            elif command[:1] == ["book"]:
                symbol, venue, bids, asks = command[1:]
                venue_book = VenueBook()
                venue_book.load(levels(bids), levels(asks))
                with books[symbol].lock:
                    books[symbol].attach(venue, venue_book)
                quotes.refresh(symbol)
            elif command[:1] == ["detach"]:
                with books[command[1]].lock:
                    books[command[1]].detach(command[2])
                quotes.refresh(command[1])
            elif command[:1] == ["serving"]:
                server.set_serving(command[1:] == ["on"])
            elif command[:1] == ["catalogue"]:
                served.reconfigure(command[1].split(","), served.depth)
            elif command == ["stats"]:
                streams = server.stats()
                stats = {"open_streams": streams.open_streams, "published_total": served.published_total,
                         "sent_total": streams.sent, "skipped_total": streams.skipped,
                         "quote_streams": streams.quote_streams, "quote_updates_sent": streams.quote_updates_sent,
                         "quote_updates_published": quotes.quotes.published_total}
                if READY_FIRST is not None:
                    stats.update(polls_ready=READY_FIRST.ready, polls_parked=READY_FIRST.parked)
                print("STATS", json.dumps(stats), flush=True)
            print("OK", flush=True)
        stop.set()  # stdin closed: the test that started this process is gone

    print("PORT", server.port, flush=True)
    workers = [gevent.spawn(obey_stdin), gevent.spawn(quotes.run)]
    if args.interval > 0:
        workers.append(gevent.spawn(publish_steadily))
    stop.wait()
    gevent.killall(workers, block=False)
    server.stop(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
