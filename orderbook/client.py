"""``bin/client``: stream the merged book from the aggregator and print it, or list the symbols it serves.

A readable two-sided ladder (redrawn in place on a terminal, one block per summary when piped) or, with
``--json``, one JSON object per summary per line. Without ``--symbol`` or ``--depth`` it streams
``OrderbookAggregator.BookSummary`` (the default symbol at the server's full depth), as it always has; with either
it streams ``OrderbookStreams.Book``. ``--list`` prints ``OrderbookStreams.Symbols``: a table, or with ``--json``
one JSON object per symbol per line. ``--quote AMOUNT`` streams ``OrderbookQuotes.Quote`` instead: what filling
AMOUNT of the base asset costs across the venues (``--side``, ``--net`` of the server's taker fees), one line per
update, or with ``--json`` one JSON object per update per line. Connection problems, an unknown symbol or a depth
the server does not serve are reported in one line on stderr with exit code 2, never a traceback: this is a tool
for people watching a market, not for debugging gRPC. A stream that ends after its first summary (the server
stops: it ends every stream with UNAVAILABLE and says why; or the connection is lost) is reported in one line
too, with exit code 1.

``--addr`` may name several servers (``HOST:PORT,HOST:PORT``: the edges of a deployment, README "Beyond one
machine"). The client streams from the first it reaches; when that one is lost, ends its stream, refuses it
UNAVAILABLE (an edge without a source) or has no room, it says so on stderr and goes on from the next, and gives
up only when a whole round of them has failed without a summary.
"""

from __future__ import annotations

from orderbook.boot import quiet_grpc_core

quiet_grpc_core()  # before grpc is imported: its C core would print its own lines before the client's one

import argparse  # noqa: E402  (after quiet_grpc_core(), on purpose)
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import ssl  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402
from collections.abc import Generator, Sequence  # noqa: E402
from typing import TextIO  # noqa: E402

import grpc  # noqa: E402

from orderbook.address import Address, BadAddress  # noqa: E402
from orderbook.arguments import (  # noqa: E402
    OneLineParser,
    UsageError,
    one_of,
    positive_seconds,
    positive_whole_number,
)
from orderbook.proto import orderbook_pb2, orderbook_quotes_pb2, orderbook_streams_pb2  # noqa: E402
from orderbook.symbol_state import canonical_symbol  # noqa: E402

METHOD_PATH = "/orderbook.OrderbookAggregator/BookSummary"
BOOK_PATH = "/orderbook.OrderbookStreams/Book"
SYMBOLS_PATH = "/orderbook.OrderbookStreams/Symbols"
QUOTE_PATH = "/orderbook.OrderbookQuotes/Quote"
EXIT_OK = 0
EXIT_STREAM_ENDED = 1
EXIT_UNREACHABLE = 2
EXIT_INTERRUPTED = 130

_CHANNEL_OPTIONS = (
    # Notice a server that vanished without closing the connection; the server accepts pings every 5 s or more.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 1024 * 1024),
)

_CLEAR_SCREEN = "\x1b[2J"
_HOME = "\x1b[H"
_CLEAR_TO_END_OF_LINE = "\x1b[K"
_CLEAR_TO_END_OF_SCREEN = "\x1b[J"


PROG = "client"
"""Every line the client writes on stderr starts with it (``client: error: ...``), as the servers' start with theirs."""


class ClientError(Exception):
    """A problem the user must hear about in one line (:func:`main` writes it after ``client: error:``); the
    process exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_UNREACHABLE, another_may_serve: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.another_may_serve = another_may_serve
        """The server was lost, unreachable, full or ended the stream: another address may do better."""


def _server_addresses(text: str) -> list[str]:
    """HOST:PORT[,HOST:PORT...], each checked here: gRPC would take ``127.0.0.1`` for port 443 and answer
    "connection refused"."""
    addresses = [part.strip() for part in text.split(",")]
    for address in addresses:
        try:
            Address.parse(address, min_port=1)
        except BadAddress as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return addresses


EXIT_CODES = """exit codes (each but 0 and 130 after one line on stderr, client: error: ...):
  0    the --count summaries (or quote updates) were shown, or --list printed
  1    the server ended the stream (one that stops says why), or the connection was lost after a summary
  2    a bad command line or --tls-ca, no server reached, TLS required, an unknown symbol, a depth the server
       does not serve, no room for another stream, or --quote asked of a server that serves no quotes
  130  interrupted (Ctrl-C)
With several --addr, a failure sends the client on to the next address; it exits only when a whole round of them
failed without a summary, with the last failure's code."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Raises :class:`orderbook.arguments.UsageError` (one line) for a bad command line; ``--help`` exits 0."""
    parser = OneLineParser(prog=PROG, description="Stream the consolidated order book.", epilog=EXIT_CODES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addr", type=_server_addresses, default=["127.0.0.1:5002"], metavar="HOST:PORT[,...]",
                        help="server address (default 127.0.0.1:5002); several, comma-separated: go on from the "
                        "next when one is lost")
    parser.add_argument("--symbol", type=canonical_symbol, metavar="SYMBOL",
                        help="the symbol to stream, e.g. BTCUSDT (default: the server's default symbol)")
    parser.add_argument("--depth", type=positive_whole_number, metavar="N",
                        help="levels a side, at most the server's --depth (default: all it serves)")
    parser.add_argument("--list", action="store_true",
                        help="print the symbols the server serves, their exchanges and which are in step, then exit")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per summary (with --list: per symbol) per line")
    parser.add_argument("--count", type=positive_whole_number, metavar="N",
                        help="exit after N summaries or quote updates (default: until the stream ends or Ctrl-C)")
    parser.add_argument("--quote", type=_amount, metavar="AMOUNT",
                        help="stream what filling AMOUNT of the base asset (ETH of ETHBTC) costs across the venues, "
                        "one line per change: filled, average price, worst price, cost, and the split by venue")
    parser.add_argument("--side", type=one_of("buy", "sell"), metavar="{buy,sell}",
                        help="with --quote: buy (take the asks; the default) or sell (take the bids)")
    parser.add_argument("--net", action="store_true",
                        help="with --quote: route and price net of each venue's taker fee (the server's --taker-fee)")
    parser.add_argument(
        "--timeout", type=positive_seconds, default=5.0, metavar="SECONDS",
        help="how long to wait for the server to accept the connection before giving up with exit code 2; once "
        "connected, the stream itself has no time limit (default %(default)s)",
    )
    parser.add_argument("--tls-ca", metavar="PATH",
                        help="connect with TLS, trusting this PEM root certificate (default: plaintext)")
    args = parser.parse_args(argv)
    if args.list:
        for flag in ("symbol", "depth", "count", "quote"):
            if getattr(args, flag) is not None:
                raise UsageError("--list", f"lists the symbols and exits: it takes no --{flag}")
    if args.quote is not None and args.depth is not None:
        raise UsageError("--quote", "walks every level the server holds: it takes no --depth")
    if args.quote is None:
        for flag, given in (("side", args.side is not None), ("net", args.net)):
            if given:
                raise UsageError(f"--{flag}", "goes with --quote AMOUNT")
    return args


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected an amount above 0, got {text!r}")
    return value


# --- rendering -----------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    """Eight decimals, as the exchanges write them, without float noise (0.05123 -> "0.05123000")."""
    return f"{value:.8f}"


def summary_to_json(summary: orderbook_pb2.Summary) -> str:
    """One line; a NaN spread (one side empty, nothing to measure) becomes null."""

    def levels(side: Sequence[orderbook_pb2.Level]) -> list[dict[str, object]]:
        return [{"exchange": level.exchange, "price": level.price, "amount": level.amount} for level in side]

    spread = None if math.isnan(summary.spread) else summary.spread
    return json.dumps({"spread": spread, "bids": levels(summary.bids), "asks": levels(summary.asks)})


def render_ladder(summary: orderbook_pb2.Summary, number: int, caption: str | None = None) -> list[str]:
    """Bids on the left (best at the top), asks on the right (best at the top), the spread underneath, and after it
    ``caption`` (by default, which summary this is and when it came)."""
    bids = [(level.exchange, _number(level.amount), _number(level.price)) for level in summary.bids]
    asks = [(_number(level.price), _number(level.amount), level.exchange) for level in summary.asks]
    exchange_width = max([8, *(len(level.exchange) for level in (*summary.bids, *summary.asks))])
    numbers = [cell for row in bids for cell in row[1:]] + [cell for row in asks for cell in row[:2]]
    number_width = max([12, *(len(cell) for cell in numbers)])

    def bid_cells(row: tuple[str, str, str]) -> str:
        return f"{row[0]:<{exchange_width}}  {row[1]:>{number_width}}  {row[2]:>{number_width}}"

    def ask_cells(row: tuple[str, str, str]) -> str:
        return f"{row[0]:>{number_width}}  {row[1]:>{number_width}}  {row[2]:<{exchange_width}}"

    blank = ("", "", "")
    half = exchange_width + 2 * number_width + 4
    lines = [
        f"{'BIDS':^{half}} | {'ASKS':^{half}}",
        f"{bid_cells(('exchange', 'amount', 'price'))} | {ask_cells(('price', 'amount', 'exchange'))}",
        f"{'-' * half}-+-{'-' * half}",
    ]
    for index in range(max(len(bids), len(asks))):
        bid = bids[index] if index < len(bids) else blank
        ask = asks[index] if index < len(asks) else blank
        lines.append(f"{bid_cells(bid)} | {ask_cells(ask)}")
    spread = "n/a (one side of the book is empty)" if math.isnan(summary.spread) else _number(summary.spread)
    if caption is None:
        caption = f"summary #{number} at {time.strftime('%H:%M:%S')}"
    lines.append(f"spread {spread}    {caption}")
    return [line.rstrip() for line in lines]


def _price(value: float) -> str:
    return "n/a" if math.isnan(value) else _number(value)


def render_quote(update: orderbook_quotes_pb2.QuoteUpdate) -> str:
    """One line: what was filled of the amount, the average and worst prices, the cost, and each venue's part."""
    split = ", ".join(f"{fill.exchange} {_number(fill.amount)} @ {_number(fill.average_price)}"
                      for fill in update.fills) or "-"
    return (f"filled {_number(update.filled)} of {_number(update.amount)}  average {_price(update.average_price)}  "
            f"worst {_price(update.worst_price)}  cost {_number(update.cost)}  by venue: {split}  "
            f"at {time.strftime('%H:%M:%S')}")


def quote_to_json(update: orderbook_quotes_pb2.QuoteUpdate) -> str:
    """One line; a NaN price (nothing filled) becomes null."""

    def price(value: float) -> float | None:
        return None if math.isnan(value) else value

    return json.dumps({"amount": update.amount, "filled": update.filled,
                       "average_price": price(update.average_price), "worst_price": price(update.worst_price),
                       "cost": update.cost,
                       "fills": [{"exchange": fill.exchange, "amount": fill.amount,
                                  "average_price": price(fill.average_price)} for fill in update.fills]})


def render_symbols(states: Sequence[orderbook_streams_pb2.SymbolState]) -> list[str]:
    """One row a symbol, in the server's order: the first is its default symbol."""
    rows = [("symbol", "exchanges", "in step")]
    rows += [(state.symbol, ", ".join(state.exchanges) or "-", ", ".join(state.exchanges_in_step) or "-")
             for state in states]
    widths = [max(_width(row[column]) for row in rows) for column in range(2)]
    lines = [f"{_pad(row[0], widths[0])}  {_pad(row[1], widths[1])}  {row[2]}" for row in rows]
    if len(lines) > 1:
        lines[1] += "  (default)"
    return [line.rstrip() for line in lines]


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: a wide character (CJK, as in Binance's test symbol ``这是测试币456``)
    takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def symbol_to_json(state: orderbook_streams_pb2.SymbolState, default: bool) -> str:
    return json.dumps({"symbol": state.symbol, "exchanges": list(state.exchanges),
                       "exchanges_in_step": list(state.exchanges_in_step), "default": default},
                      ensure_ascii=False)  # a Unicode symbol as the server names it, not as \u escapes


class Printer:
    """Writes each summary in the chosen form; on a terminal the ladder replaces the previous one."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self._out = out
        self._as_json = as_json
        self._redraw = not as_json and out.isatty()
        self._count = 0

    @property
    def count(self) -> int:
        """Summaries shown."""
        return self._count

    def show_quote(self, update: orderbook_quotes_pb2.QuoteUpdate) -> None:
        """One line per update, on a terminal as when piped."""
        self._count += 1
        self._out.write((quote_to_json(update) if self._as_json else render_quote(update)) + "\n")
        self._out.flush()

    def show(self, summary: orderbook_pb2.Summary) -> None:
        self._count += 1
        if self._as_json:
            text = summary_to_json(summary) + "\n"
        elif self._redraw:
            lines = render_ladder(summary, self._count)
            body = "".join(f"{line}{_CLEAR_TO_END_OF_LINE}\n" for line in lines)
            text = (_CLEAR_SCREEN if self._count == 1 else "") + _HOME + body + _CLEAR_TO_END_OF_SCREEN
        else:
            separator = "\n" if self._count > 1 else ""
            text = separator + "\n".join(render_ladder(summary, self._count)) + "\n"
        self._out.write(text)
        self._out.flush()


# --- connection ----------------------------------------------------------------------------------------------


def read_tls_ca(path: str) -> bytes:
    """The PEM root certificates in ``path`` (``--tls-ca``), checked here: grpc takes any bytes and then fails every
    connection, so the user would hear "cannot reach the server" about a file they mistyped."""
    try:
        with open(path, "rb") as file:
            root = file.read()
    except OSError as exc:
        raise ClientError(f"--tls-ca {path}: {exc.strerror or exc}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=root.decode("ascii"))
    except (UnicodeDecodeError, ssl.SSLError):
        raise ClientError(f"--tls-ca {path}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)") from None
    return root


def open_channel(addr: str, tls_root: bytes | None) -> grpc.Channel:
    """A channel to ``addr``: plaintext, or TLS trusting ``tls_root`` (:func:`read_tls_ca`)."""
    if tls_root is None:
        return grpc.insecure_channel(addr, options=_CHANNEL_OPTIONS)
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_root)
    return grpc.secure_channel(addr, credentials, options=_CHANNEL_OPTIONS)


TLS_ONLY_REASONS = ("Socket closed", "Connection reset by peer")
"""What grpc reports when a plaintext client meets a TLS listener."""


def _failure_reason(error: grpc.RpcError) -> str:
    details = (error.details() or "").strip()
    if "Connection refused" in details:
        return "connection refused"
    if "Domain name not found" in details:
        return "unknown host"
    last = details.rsplit("last error:", 1)[-1].strip()
    return last.splitlines()[0] if last else str(error.code())


def wait_until_connected(channel: grpc.Channel, addr: str, timeout: float, tls: bool = False) -> None:
    """Return once the channel is READY; fail fast (with the reason) when the first connection attempt fails."""
    settled = threading.Event()
    states: list[grpc.ChannelConnectivity] = []

    def on_state(state: grpc.ChannelConnectivity) -> None:
        if state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
            states.append(state)
            settled.set()

    channel.subscribe(on_state, try_to_connect=True)
    try:
        if not settled.wait(timeout):
            raise ClientError(f"cannot reach the order book server at {addr} (no answer within {timeout:g} s)",
                              another_may_serve=True)
    finally:
        channel.unsubscribe(on_state)
    if states[0] is grpc.ChannelConnectivity.READY:
        return
    # A call that is not willing to wait for the channel fails at once, and its details say why.
    method = channel.unary_stream(METHOD_PATH, orderbook_pb2.Empty.SerializeToString, orderbook_pb2.Summary.FromString)
    probe = method(orderbook_pb2.Empty(), timeout=timeout)
    try:
        next(probe)  # succeeds only if the server came up meanwhile: then go on as connected
    except grpc.RpcError as error:
        reason = _failure_reason(error)
        if not tls and reason.endswith(TLS_ONLY_REASONS):
            # A TLS listener drops a plaintext client during the handshake: all grpc says is "Socket closed".
            raise ClientError(f"the order book server at {addr} closed the connection: it may require TLS "
                              "(pass --tls-ca PATH)") from error
        raise ClientError(f"cannot reach the order book server at {addr} ({reason})",
                          another_may_serve=True) from error
    finally:
        probe.cancel()


def _rpc_failure(error: grpc.RpcError, addr: str,
                 request: orderbook_streams_pb2.BookRequest | orderbook_quotes_pb2.QuoteRequest | None,
                 what: str = "stream") -> ClientError:
    """What to tell the user about a failed ``what`` (``request``: the Book call's, None for the others)."""
    code, details = error.code(), error.details()
    if code is grpc.StatusCode.UNAVAILABLE:
        return ClientError(f"lost the order book server at {addr} ({_failure_reason(error)})",
                           another_may_serve=True)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ClientError(f"the order book server at {addr} has no room for another stream",
                           another_may_serve=True)
    if code is grpc.StatusCode.NOT_FOUND and request is not None:
        return ClientError(f"the order book server at {addr} does not serve {request.symbol!r} "
                           "(--list shows the symbols it serves)")
    if code is grpc.StatusCode.INVALID_ARGUMENT and request is not None:
        return ClientError(f"the order book server at {addr} refused the request: {details}")
    if code is grpc.StatusCode.UNIMPLEMENTED and isinstance(request, orderbook_quotes_pb2.QuoteRequest):
        return ClientError(f"the order book server at {addr} serves no quotes: {details}", another_may_serve=True)
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return ClientError(f"the order book server at {addr} does not offer --symbol, --depth or --list "
                           "(it has no orderbook.OrderbookStreams service)")
    return ClientError(f"the order book server at {addr} failed the {what}: {code.name}: {details}")


def summaries(channel: grpc.Channel, addr: str,
              request: orderbook_streams_pb2.BookRequest | None = None) -> Generator[orderbook_pb2.Summary, None, None]:
    """The stream of summaries until the server ends it: BookSummary, or Book for ``request``; errors become
    :class:`ClientError`."""
    if request is None:
        call = channel.unary_stream(METHOD_PATH, orderbook_pb2.Empty.SerializeToString,
                                    orderbook_pb2.Summary.FromString)
        responses = call(orderbook_pb2.Empty(), wait_for_ready=True)
    else:
        call = channel.unary_stream(BOOK_PATH, orderbook_streams_pb2.BookRequest.SerializeToString,
                                    orderbook_pb2.Summary.FromString)
        responses = call(request, wait_for_ready=True)
    received = False
    try:
        for summary in responses:
            received = True
            yield summary
    except grpc.RpcError as error:
        if received and error.code() is grpc.StatusCode.UNAVAILABLE:
            raise ClientError(f"the order book server at {addr} ended the stream ({_failure_reason(error)})",
                              EXIT_STREAM_ENDED, another_may_serve=True) from error
        raise _rpc_failure(error, addr, request) from error
    finally:
        responses.cancel()


def quote_updates(channel: grpc.Channel, addr: str, request: orderbook_quotes_pb2.QuoteRequest
                  ) -> Generator[orderbook_quotes_pb2.QuoteUpdate, None, None]:
    """The stream of ``OrderbookQuotes.Quote`` updates until the server ends it; errors become
    :class:`ClientError`."""
    call = channel.unary_stream(QUOTE_PATH, orderbook_quotes_pb2.QuoteRequest.SerializeToString,
                                orderbook_quotes_pb2.QuoteUpdate.FromString)
    responses = call(request, wait_for_ready=True)
    received = False
    try:
        for update in responses:
            received = True
            yield update
    except grpc.RpcError as error:
        if received and error.code() is grpc.StatusCode.UNAVAILABLE:
            raise ClientError(f"the order book server at {addr} ended the stream ({_failure_reason(error)})",
                              EXIT_STREAM_ENDED, another_may_serve=True) from error
        raise _rpc_failure(error, addr, request) from error
    finally:
        responses.cancel()


def quote_request(args: argparse.Namespace) -> orderbook_quotes_pb2.QuoteRequest:
    """The Quote request ``--quote``, ``--side``, ``--net`` and ``--symbol`` ask for."""
    side = orderbook_quotes_pb2.SELL if args.side == "sell" else orderbook_quotes_pb2.BUY
    return orderbook_quotes_pb2.QuoteRequest(symbol=args.symbol or "", side=side, amount=args.quote,
                                             net_of_fees=args.net)


def list_symbols(channel: grpc.Channel, addr: str, timeout: float) -> list[orderbook_streams_pb2.SymbolState]:
    call = channel.unary_unary(SYMBOLS_PATH, orderbook_pb2.Empty.SerializeToString,
                               orderbook_streams_pb2.SymbolList.FromString)
    try:
        return list(call(orderbook_pb2.Empty(), timeout=timeout, wait_for_ready=True).symbols)
    except grpc.RpcError as error:
        raise _rpc_failure(error, addr, None, "symbol list") from error


def book_request(args: argparse.Namespace) -> orderbook_streams_pb2.BookRequest | None:
    """The Book request ``--symbol`` and ``--depth`` ask for; None without either (BookSummary, as always)."""
    if args.symbol is None and args.depth is None:
        return None
    return orderbook_streams_pb2.BookRequest(symbol=args.symbol or "", depth=args.depth or 0)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Serve the command from ``args.addr``: from the first address, and from each next one in turn when one
    fails in a way another may not (see the module docstring)."""
    addresses: list[str] = args.addr
    tls_root = None if args.tls_ca is None else read_tls_ca(args.tls_ca)
    printer = Printer(out, args.json)
    failed_in_a_row = 0
    index = 0
    while True:
        addr = addresses[index % len(addresses)]
        before = printer.count
        try:
            return _run_at(addr, args, tls_root, out, printer)
        except ClientError as error:
            failed_in_a_row = 0 if printer.count > before else failed_in_a_row + 1
            if not error.another_may_serve or len(addresses) == 1 or failed_in_a_row >= len(addresses):
                raise
            index += 1
            # Not an error line: the client goes on. The same prefix, so that every line it writes says whose it is.
            print(f"{PROG}: {error}; going on from {addresses[index % len(addresses)]}", file=sys.stderr, flush=True)


def _run_at(addr: str, args: argparse.Namespace, tls_root: bytes | None, out: TextIO, printer: Printer) -> int:
    with open_channel(addr, tls_root) as channel:
        wait_until_connected(channel, addr, args.timeout, tls=args.tls_ca is not None)
        if args.list:
            states = list_symbols(channel, addr, args.timeout)
            if args.json:
                lines = [symbol_to_json(state, index == 0) for index, state in enumerate(states)]
            else:
                lines = render_symbols(states)
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()
            return EXIT_OK
        if args.quote is not None:
            updates = quote_updates(channel, addr, quote_request(args))
            try:
                for update in updates:
                    printer.show_quote(update)
                    if printer.count == args.count:
                        return EXIT_OK
            finally:
                updates.close()
            raise ClientError(f"the order book server at {addr} ended the stream", EXIT_STREAM_ENDED,
                              another_may_serve=True)
        stream = summaries(channel, addr, book_request(args))
        try:
            for summary in stream:
                printer.show(summary)
                if printer.count == args.count:
                    return EXIT_OK
        finally:
            stream.close()
    raise ClientError(f"the order book server at {addr} ended the stream", EXIT_STREAM_ENDED,
                      another_may_serve=True)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE  # 2, as argparse would exit
    try:
        return run(args, sys.stdout)
    except ClientError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. piped into head): stop quietly, and keep the final flush from complaining.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
