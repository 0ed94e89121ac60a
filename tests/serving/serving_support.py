"""Shared pieces of the serving tests: the helper server process and a few client shortcuts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import grpc

from orderbook.proto import orderbook_pb2, orderbook_quotes_pb2, orderbook_streams_pb2
from tests.support.processes import with_default_signals
from tests.support.waiting import wait_until

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
HELPER = HERE / "serve_helper.py"
CLIENT = REPO_ROOT / "bin" / "client"
METHOD_PATH = "/orderbook.OrderbookAggregator/BookSummary"
BOOK_PATH = "/orderbook.OrderbookStreams/Book"
SYMBOLS_PATH = "/orderbook.OrderbookStreams/Symbols"
QUOTE_PATH = "/orderbook.OrderbookQuotes/Quote"


class Helper:
    """One running ``serve_helper.py``; commands go to its stdin, replies come from its stdout."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                with_default_signals([sys.executable, HELPER, *args]),  # ended with SIGTERM
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._stdin = self.proc.stdin
        self._stdout = self.proc.stdout
        self.first_line = self._stdout.readline().strip()

    @property
    def port(self) -> int:
        word, _, port = self.first_line.partition(" ")
        assert word == "PORT", f"helper did not start: {self.first_line!r}; stderr: {self.stderr()}"
        return int(port)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def command(self, line: str) -> list[str]:
        """Send one command and return the lines the helper printed before its "OK"."""
        self._stdin.write(line + "\n")
        self._stdin.flush()
        replies = []
        while (reply := self._stdout.readline().strip()) != "OK":
            assert reply, f"helper exited; stderr: {self.stderr()}"
            replies.append(reply)
        return replies

    def stats(self) -> dict[str, int]:
        (line,) = self.command("stats")
        word, _, payload = line.partition(" ")
        assert word == "STATS"
        return json.loads(payload)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self._stdin.close()  # the helper stops when its stdin ends
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stdout.close()


def book_summary(channel: grpc.Channel) -> grpc.UnaryStreamMultiCallable[orderbook_pb2.Empty, orderbook_pb2.Summary]:
    """The streaming method, by path (no generated stub needed)."""
    return channel.unary_stream(METHOD_PATH, orderbook_pb2.Empty.SerializeToString, orderbook_pb2.Summary.FromString)


def book(channel: grpc.Channel) -> grpc.UnaryStreamMultiCallable[orderbook_streams_pb2.BookRequest,
                                                                  orderbook_pb2.Summary]:
    """``OrderbookStreams.Book``, by path: call it with an ``orderbook_streams_pb2.BookRequest``."""
    return channel.unary_stream(BOOK_PATH, orderbook_streams_pb2.BookRequest.SerializeToString,
                                orderbook_pb2.Summary.FromString)


def symbols(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable[orderbook_pb2.Empty,
                                                                   orderbook_streams_pb2.SymbolList]:
    """``OrderbookStreams.Symbols``, by path: call it with an ``orderbook_pb2.Empty``."""
    return channel.unary_unary(SYMBOLS_PATH, orderbook_pb2.Empty.SerializeToString,
                               orderbook_streams_pb2.SymbolList.FromString)


def quote(channel: grpc.Channel) -> grpc.UnaryStreamMultiCallable[orderbook_quotes_pb2.QuoteRequest,
                                                                   orderbook_quotes_pb2.QuoteUpdate]:
    """``OrderbookQuotes.Quote``, by path: call it with an ``orderbook_quotes_pb2.QuoteRequest``."""
    return channel.unary_stream(QUOTE_PATH, orderbook_quotes_pb2.QuoteRequest.SerializeToString,
                                orderbook_quotes_pb2.QuoteUpdate.FromString)


def run_client(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLIENT), *args], capture_output=True, text=True, timeout=timeout)


def wait_for_a_free_stream(channel: grpc.Channel) -> None:
    """Until a BookSummary stream is granted (refused meanwhile with RESOURCE_EXHAUSTED, never anything else): a
    slot freed by a cancel is anyone's once the server has seen the cancel."""

    def granted() -> bool:
        try:
            return bool(next(book_summary(channel)(orderbook_pb2.Empty(), timeout=5)).bids)
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
            return False

    wait_until(granted, 5, "a stream freed by a cancel", interval=0.05)
