"""``bin/book-at DIR --at TIME [--symbol S] [--depth N] [--json]``: the consolidated book a recording's server
served at TIME, rebuilt offline by the service's own feed (:mod:`orderbook.replay.rebuild`), printed as
``bin/client`` prints a summary (``--json``: the same one-line object).

TIME is compared with the frames' receive times: the book is that after every batch of frames received by then
(a batch is published once all of it is applied), every snapshot and listing answered by then, every connection
opened or closed by then. A venue whose book was not in step at TIME is left out, as the service left it out, and
said on stderr with why (the feed's own words: a gap, a reconnect...). What cannot be read of the recording is said
in one line each and skipped; a command line, a TIME outside the recording, or a directory that holds none is one
error line and exit code 2.
"""

from __future__ import annotations

from orderbook.boot import quiet_grpc_core

quiet_grpc_core()  # before grpc is imported (by orderbook.client): the client's rendering is reused

import argparse  # noqa: E402  (after quiet_grpc_core(), on purpose)
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TextIO  # noqa: E402

from orderbook.arguments import OneLineParser, UsageError, positive_whole_number  # noqa: E402
from orderbook.client import render_ladder, summary_to_json  # noqa: E402
from orderbook.merge import MergedTop  # noqa: E402
from orderbook.proto import orderbook_pb2  # noqa: E402
from orderbook.recording.format import FormatError, Kind  # noqa: E402
from orderbook.recording.reader import read_directory  # noqa: E402
from orderbook.replay.command import EXIT_OK, problem_line, refused  # noqa: E402
from orderbook.replay.moment import format_moment, parse_moment  # noqa: E402
from orderbook.replay.rebuild import OutOfStep, RecordedBooks  # noqa: E402
from orderbook.serving.codec import encode_summary  # noqa: E402
from orderbook.symbol_state import canonical_symbol  # noqa: E402

PROG = "book-at"


class BookAtError(Exception):
    """One line for the user: a TIME outside the recording, a symbol it did not follow, no recording."""


@dataclass(frozen=True, slots=True)
class BookAt:
    """The book at a moment: its top (``depth`` levels a side), and each venue of the symbol not in step then."""

    top: MergedTop
    out_of_step: list[OutOfStep]
    first_ns: int


def book_at(directory: Path, at_ns: int, symbol: str | None, depth: int | None,
            on_problem: Callable[[str], None]) -> BookAt:
    """Rebuild the recording in ``directory`` up to ``at_ns``; raises :class:`BookAtError`,
    :class:`~orderbook.recording.format.FormatError`."""
    records = read_directory(directory, on_problem, packed=True)
    try:
        first = next(records)
    except StopIteration:
        raise BookAtError(f"{directory}: no record can be read") from None
    if first.kind is not Kind.START:
        raise BookAtError(f"{directory}: the recording does not begin with its start record")
    if at_ns < first.time_ns:
        raise BookAtError(f"--at {format_moment(at_ns)}: before the recording, which begins at "
                          f"{format_moment(first.time_ns)}")
    books = RecordedBooks(first.meta)
    symbol = symbol or books.symbols[0]
    if symbol not in books.books:
        raise BookAtError(f"--symbol {symbol}: not recorded (the recording follows {', '.join(books.symbols)})")
    if depth is not None and depth > books.depth:
        raise BookAtError(f"--depth {depth}: the recording's server served {books.depth} levels a side")
    served = {name: True for name in books.venue_names}
    since: dict[str, OutOfStep] = {name: OutOfStep(name, first.time_ns, "not in step yet since the recording began")
                                   for name in books.venue_names}
    last_ns = first.time_ns
    with books.feed_logs():
        for record in records:
            if books.last_frame_ns(record) > at_ns:
                break
            last_ns = books.last_frame_ns(record)
            books.notes.lines.clear()
            books.take(record)
            in_step = set(books.in_step(symbol))
            for name in books.venue_names:
                if served[name] and name not in in_step:
                    since[name] = OutOfStep(name, record.time_ns, _why(books.notes.lines, symbol, record.meta,
                                                                       record.kind))
                served[name] = name in in_step
        else:
            if at_ns > last_ns:
                raise BookAtError(f"--at {format_moment(at_ns)}: after the recording, which ends at "
                                  f"{format_moment(last_ns)}")
    top = books.merged_top(symbol)
    if depth is not None:
        top = MergedTop(top.spread, top.bids[:depth], top.asks[:depth])
    in_step = set(books.in_step(symbol))
    return BookAt(top, [since[name] for name in books.venue_names if name not in in_step], first.time_ns)


def _why(lines: list[str], symbol: str, meta: dict[str, object], kind: Kind) -> str:
    """Why a venue's book left: the feed's latest line about the symbol, else its latest, else what the record
    was."""
    about = [line for line in lines if symbol in line]
    if about or lines:
        return (about or lines)[-1]
    if kind is Kind.CLOSED:
        return f"the connection ended ({meta.get('reason')}: {meta.get('detail')})"
    return f"on a {kind.name} record"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description="The consolidated book a recording's server served at a moment, "
                           "rebuilt offline from what the venues sent (bin/run-server --record DIR).")
    parser.add_argument("directory", metavar="DIR", help="the recording (bin/run-server --record DIR)")
    parser.add_argument("--at", required=True, type=parse_moment, metavar="TIME",
                        help="the moment: ISO 8601 (2026-12-03T14:03:07.250Z; without a zone, UTC) or Unix seconds "
                        "(1796306587.25), compared with the frames' receive times")
    parser.add_argument("--symbol", type=canonical_symbol, metavar="SYMBOL",
                        help="the symbol (default: the recording's default symbol, its first)")
    parser.add_argument("--depth", type=positive_whole_number, metavar="N",
                        help="levels a side (default: all the recording's server served)")
    parser.add_argument("--json", action="store_true", help="print the one JSON object bin/client --json prints")
    return parser.parse_args(argv)


def show(result: BookAt, at_ns: int, as_json: bool, out: TextIO, err: TextIO) -> None:
    for gone in result.out_of_step:
        print(f"{PROG}: {gone.venue} was not in step at {format_moment(at_ns)}, left out (since "
              f"{format_moment(gone.since_ns)}: {gone.why})", file=err)
    summary = orderbook_pb2.Summary.FromString(encode_summary(result.top))
    if as_json:
        out.write(summary_to_json(summary) + "\n")
    else:
        out.write("\n".join(render_ladder(summary, 1, f"at {format_moment(at_ns)}")) + "\n")


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as error:
        return refused(PROG, error)
    try:
        result = book_at(Path(args.directory), args.at, args.symbol, args.depth, problem_line(PROG))
    except (BookAtError, FormatError) as error:
        return refused(PROG, error)
    show(result, args.at, args.json, sys.stdout, sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
