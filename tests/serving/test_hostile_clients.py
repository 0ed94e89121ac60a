"""Hostile and careless clients against the server in its own process (serve_helper.py): no request grows memory,
no connection locks the others out, idle connections and unfinished handshakes are closed."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving_support import (BOOK_PATH, METHOD_PATH, SYMBOLS_PATH, Helper, book, book_summary, symbols,
                             wait_for_a_free_stream)

from orderbook.proto import orderbook_pb2, orderbook_streams_pb2
from orderbook.serving.grpc_server import HANDSHAKE_TIMEOUT, IDLE_TIMEOUT

Start = Callable[..., Helper]
EMPTY = orderbook_pb2.Empty()
SHALLOW = orderbook_streams_pb2.BookRequest(symbol="ETHBTC", depth=3)
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # channels to one target share a connection otherwise
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type SETTINGS, no flags, stream 0


@pytest.fixture
def channels() -> Iterator[Callable[..., grpc.Channel]]:
    opened: list[grpc.Channel] = []

    def open_channel(target: str) -> grpc.Channel:
        channel = grpc.insecure_channel(target, options=OWN_CONNECTION)
        opened.append(channel)
        return channel

    yield open_channel
    for channel in opened:
        channel.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def health_check(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_malformed_requests_are_refused_keep_no_memory_and_are_logged_once(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    helper = start_helper("--interval", "0.05")
    raw: grpc.UnaryStreamMultiCallable[bytes, bytes] = channels(helper.target).unary_stream(
        METHOD_PATH, request_serializer=None)

    def refused(count: int) -> set[grpc.StatusCode]:
        codes = set()
        for _ in range(count):
            with pytest.raises(grpc.RpcError) as error:
                list(raw(b"\xff\xff", timeout=5))
            codes.add(error.value.code())
        return codes

    assert refused(300) == {grpc.StatusCode.INVALID_ARGUMENT}  # warm-up: arenas and caches reach their size
    before = rss_kib(helper.proc.pid)
    assert refused(3000) == {grpc.StatusCode.INVALID_ARGUMENT}
    growth = rss_kib(helper.proc.pid) - before
    assert growth < 3 * 1024, f"RSS grew {growth} KiB over 3,000 malformed requests"  # was ~60 MiB (20 KB each)
    # A well-formed request on the same connection is still served.
    assert next(book_summary(channels(helper.target))(EMPTY, timeout=5)).bids
    log = helper.stderr()
    assert log.count("malformed request to") == 1, log  # one line a minute, with a count
    assert "Traceback" not in log


def test_malformed_book_and_symbols_requests_are_refused_keep_no_memory_and_are_logged_once(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    helper = start_helper("--interval", "0.05")
    channel = channels(helper.target)
    raw_book: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(BOOK_PATH, request_serializer=None)
    raw_symbols: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(SYMBOLS_PATH,
                                                                                  request_serializer=None)
    # A bad tag, a field cut short, and (for Book) a symbol that is not UTF-8, as proto3 strings must be.
    bad_requests: list[tuple[Callable[..., Any], bytes]] = [
        (raw_book, b"\xff\xff"), (raw_symbols, b"\xff\xff"), (raw_book, b"\x0a\x10ETH"), (raw_symbols, b"\x0a\x10ETH"),
        (raw_book, b"\x0a\x02\xff\xfe")]

    def refused(count: int) -> set[tuple[grpc.StatusCode, str | None]]:
        answers = set()
        for number in range(count):
            method, payload = bad_requests[number % len(bad_requests)]
            with pytest.raises(grpc.RpcError) as error:
                list(method(payload, timeout=5)) if method is raw_book else method(payload, timeout=5)
            answers.add((error.value.code(), error.value.details()))
        return answers

    expected = {(grpc.StatusCode.INVALID_ARGUMENT, "the request is not an orderbook.BookRequest message"),
                (grpc.StatusCode.INVALID_ARGUMENT, "the request is not an orderbook.Empty message")}
    assert refused(300) == expected
    before = rss_kib(helper.proc.pid)
    assert refused(2000) == expected
    growth = rss_kib(helper.proc.pid) - before
    assert growth < 3 * 1024, f"RSS grew {growth} KiB over 2,000 malformed requests"
    assert len(next(book(channel)(SHALLOW, timeout=5)).bids) == 3  # well-formed ones are still served
    assert [state.symbol for state in symbols(channel)(EMPTY, timeout=5).symbols] == ["ETHBTC"]
    log = helper.stderr()
    assert log.count("malformed request to") == 1 and "Traceback" not in log, log
    assert helper.stats()["open_streams"] == 0  # none of them was counted as a stream


def test_book_and_book_summary_streams_share_the_stream_limit(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    helper = start_helper("--interval", "0.05", "--max-streams", "4", "--max-streams-per-connection", "4")
    holder = channels(helper.target)
    held = [book(holder)(SHALLOW, timeout=20) for _ in range(2)] + [book_summary(holder)(EMPTY, timeout=20)
                                                                     for _ in range(2)]
    assert all(next(call).bids for call in held)
    newcomer = channels(helper.target)
    attempts: list[tuple[Callable[..., Iterator[orderbook_pb2.Summary]], object]] = [
        (book(newcomer), SHALLOW), (book_summary(newcomer), EMPTY)]
    for method, message in attempts * 5:
        with pytest.raises(grpc.RpcError) as refused:
            next(method(message, timeout=5))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == "all 4 BookSummary streams are taken; try again later"  # as it always said
    assert [state.symbol for state in symbols(newcomer)(EMPTY, timeout=5).symbols] == ["ETHBTC"]  # still answered
    assert health_check(newcomer) == health_pb2.HealthCheckResponse.NOT_SERVING
    log = helper.stderr()
    assert log.count("stream from") == 1 and "Book stream from" in log and "all 4 streams are taken" in log, log
    held[0].cancel()  # a Book stream's slot is anyone's once the server has seen the cancel
    wait_for_a_free_stream(newcomer)
    for call in held:
        call.cancel()


@pytest.mark.parametrize("method", ["BookSummary", "Book"])
def test_one_connection_over_its_share_locks_nobody_out(
    start_helper: Start, channels: Callable[..., grpc.Channel], method: str
) -> None:
    helper = start_helper("--interval", "0.05", "--max-streams", "8", "--max-streams-per-connection", "4")
    hog_channel = channels(helper.target)
    hog = partial(book(hog_channel), SHALLOW) if method == "Book" else partial(book_summary(hog_channel), EMPTY)
    next(hog(timeout=5))  # the client has the server's SETTINGS (its stream limit) from here on
    held = [hog(timeout=20) for _ in range(12)]
    assert all(next(call).bids for call in held[:4])
    # Its 9 streams beyond the share wait in its own channel; another connection is served at once.
    newcomer = channels(helper.target)
    started = time.monotonic()
    assert next(book_summary(newcomer)(EMPTY, timeout=5)).bids
    assert health_check(newcomer) == health_pb2.HealthCheckResponse.NOT_SERVING  # answered (never set serving)
    assert time.monotonic() - started < 2
    assert helper.stats()["open_streams"] <= 4 + 1
    for call in held:
        call.cancel()


def test_health_and_reflection_are_served_when_every_book_stream_is_taken(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    helper = start_helper("--interval", "0.05", "--max-streams", "4", "--max-streams-per-connection", "4")
    holder = book_summary(channels(helper.target))
    held = [holder(EMPTY, timeout=20) for _ in range(4)]
    assert all(next(call).bids for call in held)
    newcomer = channels(helper.target)
    for _ in range(20):
        with pytest.raises(grpc.RpcError) as refused:
            next(book_summary(newcomer)(EMPTY, timeout=5))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert health_check(newcomer) == health_pb2.HealthCheckResponse.NOT_SERVING
    log = helper.stderr()
    assert log.count("BookSummary stream from") == 1 and "all 4 streams are taken" in log, log
    held[0].cancel()  # the freed stream is anyone's once the server has seen the cancel
    wait_for_a_free_stream(newcomer)
    for call in held:
        call.cancel()


def test_a_connection_that_opens_no_stream_is_closed_after_the_idle_timeout(start_helper: Start) -> None:
    helper = start_helper("--interval", "0.05", "--idle-timeout", "1")
    with socket.create_connection(("127.0.0.1", helper.port), timeout=10) as sock:
        sock.sendall(HTTP2_PREFACE + EMPTY_SETTINGS)
        opened = time.monotonic()
        received = b""
        while chunk := sock.recv(4096):  # the server's SETTINGS and ack, then GOAWAY, then the end
            received += chunk
        closed_after = time.monotonic() - opened
    assert 0.9 < closed_after < 5, closed_after
    frame_types = set()
    while len(received) >= 9:
        length = int.from_bytes(received[:3], "big")
        frame_types.add(received[3])
        received = received[9 + length:]
    assert 0x7 in frame_types  # GOAWAY


# A TLS record header announcing a 512-byte handshake message, and the first 5 bytes of a ClientHello: the rest
# never comes.
PARTIAL_CLIENT_HELLO = bytes([0x16, 0x03, 0x01, 0x02, 0x00]) + bytes([0x01, 0x00, 0x01, 0xFC, 0x03])
CLOSE_SLACK = 5.0
"""Seconds past the handshake bound a connection may take to be seen closed: timers, a loaded machine."""


def _closed_by(sock: socket.socket, deadline: float) -> bool:
    """Read what the server sends until it closes the connection (True) or ``deadline`` (time.monotonic()) passes
    with the connection still open (False)."""
    try:
        while remaining := max(deadline - time.monotonic(), 0):
            sock.settimeout(remaining)
            if not sock.recv(4096):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return False


def test_connections_that_never_finish_their_handshake_are_closed_within_the_handshake_bound(
    start_helper: Start, tls_files: tuple[Path, Path]
) -> None:
    """gRPC core's default gave a connection 120 s to finish its TLS handshake (and, in plaintext, to send its
    HTTP/2 settings) before the idle timeout's clock even starts; connections that open no stream are documented
    as closed within IDLE_TIMEOUT."""
    cert, key = tls_files
    tls = start_helper("--interval", "0.5", "--tls-cert", str(cert), "--tls-key", str(key))
    plaintext = start_helper("--interval", "0.5")
    silent_tls, partial_tls, silent_plaintext = (
        socket.create_connection(("127.0.0.1", helper.port), timeout=5) for helper in (tls, tls, plaintext))
    with silent_tls, partial_tls, silent_plaintext:
        partial_tls.sendall(PARTIAL_CLIENT_HELLO)
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT + CLOSE_SLACK
        closed = [_closed_by(sock, deadline) for sock in (silent_tls, partial_tls, silent_plaintext)]
    assert closed == [True, True, True], f"still open {HANDSHAKE_TIMEOUT + CLOSE_SLACK:g} s later: {closed}"
    assert HANDSHAKE_TIMEOUT + CLOSE_SLACK <= IDLE_TIMEOUT  # within the documented bound


def test_malformed_health_and_reflection_requests_are_refused_and_keep_no_memory(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    # grpcio's own services: their deserializers leaked like BookSummary's (~20 KB a call) until parsed by us.
    helper = start_helper("--interval", "0.05")
    channel = channels(helper.target)
    check: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/grpc.health.v1.Health/Check",
                                                                           request_serializer=None)
    reflect: grpc.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", request_serializer=None)

    def refused(count: int) -> set[grpc.StatusCode]:
        codes = set()
        for number in range(count):
            with pytest.raises(grpc.RpcError) as error:
                check(b"\xff\xff", timeout=5) if number % 2 else list(reflect(iter([b"\xff\xff"]), timeout=5))
            codes.add(error.value.code())
        return codes

    assert refused(200) == {grpc.StatusCode.INVALID_ARGUMENT}
    before = rss_kib(helper.proc.pid)
    assert refused(1000) == {grpc.StatusCode.INVALID_ARGUMENT}
    growth = rss_kib(helper.proc.pid) - before
    assert growth < 3 * 1024, f"RSS grew {growth} KiB over 1,000 malformed requests"  # was ~20 MiB
    assert health_check(channel) == health_pb2.HealthCheckResponse.NOT_SERVING  # well-formed ones still answered
    log = helper.stderr()
    assert log.count("malformed request to") == 1 and "Traceback" not in log, log


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors_the_server_waits_without_spinning_and_recovers(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    """Past the fd limit gRPC core retries accept() once a second (it logged "File descriptor limit reached.
    Retrying."), so connections beyond it wait in the listen queue: no busy loop, and the server serves again as
    soon as descriptors are freed. (Idle connections are what free them: closed after the idle timeout.)"""
    helper = start_helper("--interval", "0.5", "--fd-limit", "96")
    sockets = []
    try:
        for _ in range(150):  # more than the process can accept
            sockets.append(socket.create_connection(("127.0.0.1", helper.port), timeout=2))
        before, started = cpu_seconds(helper.proc.pid), time.monotonic()
        time.sleep(3)
        share = (cpu_seconds(helper.proc.pid) - before) / (time.monotonic() - started)
        assert share < 0.2, f"the server used {share:.0%} of a core while out of descriptors"
    finally:
        for sock in sockets:
            sock.close()
    started = time.monotonic()
    health_check(channels(helper.target))  # answered (the helper reports no book, so NOT_SERVING)
    assert time.monotonic() - started < 3
