"""The server in a real gevent process (serve_helper.py), exercised by real gRPC clients from this process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from serving_support import CLIENT, HELPER, Helper, book_summary, wait_for_a_free_stream

from orderbook.proto import orderbook_pb2
from orderbook.serving.symbols import SHUTTING_DOWN

Start = Callable[..., Helper]
EMPTY = orderbook_pb2.Empty()
SERVICE = "orderbook.OrderbookAggregator"


def numbers(call: Iterator[orderbook_pb2.Summary], count: int) -> list[int]:
    """The helper numbers its summaries through the first bid's amount."""
    return [int(next(call).bids[0].amount) for _ in range(count)]


@pytest.fixture
def channels() -> Iterator[Callable[[str], grpc.Channel]]:
    opened: list[grpc.Channel] = []

    def open_channel(target: str, **kwargs: object) -> grpc.Channel:
        channel = grpc.insecure_channel(target, **kwargs)  # type: ignore[arg-type]
        opened.append(channel)
        return channel

    yield open_channel
    for channel in opened:
        channel.close()


def test_fifty_concurrent_streams_all_receive_data(start_helper: Start, channels: Callable[..., grpc.Channel]) -> None:
    # The trap: with a fixed thread pool of N workers, streams beyond N get nothing (and no error).
    helper = start_helper("--interval", "0.02")
    methods = [book_summary(channels(helper.target)) for _ in range(5)]
    calls = [methods[i % 5](EMPTY, timeout=15) for i in range(50)]
    received = [numbers(call, 3) for call in calls]
    assert all(len(set(seen)) == 3 and seen == sorted(seen) for seen in received), received
    assert helper.stats()["open_streams"] == 50
    for call in calls:
        call.cancel()


def test_ready_completion_events_are_taken_without_the_thread_pool(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    # grpcio internals behind orderbook.gevent_polling: if a grpcio release moves them, this fails.
    helper = start_helper("--interval", "0.02")
    method = book_summary(channels(helper.target))
    calls = [method(EMPTY, timeout=15) for _ in range(20)]
    assert all(len(set(numbers(call, 5))) == 5 for call in calls)
    stats = helper.stats()
    assert stats["polls_ready"] > 0 and stats["polls_parked"] > 0, stats
    for call in calls:
        call.cancel()


def test_stream_beyond_the_limit_gets_resource_exhausted(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    helper = start_helper("--interval", "0.05", "--max-streams", "5", "--max-streams-per-connection", "6")
    channel = channels(helper.target)
    method = book_summary(channel)
    calls = [method(EMPTY, timeout=15) for _ in range(5)]
    for call in calls:
        numbers(call, 1)
    with pytest.raises(grpc.RpcError) as refused:
        next(method(EMPTY, timeout=5))
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    calls[0].cancel()  # a freed slot is usable again once the server has seen the cancel
    wait_for_a_free_stream(channel)


def test_a_client_that_never_reads_does_not_delay_others(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    helper = start_helper("--interval", "0.005")  # ~200 summaries/s of ~600 bytes
    # A small, fixed flow-control window, so the server's sends to this client block within a few summaries.
    small_window = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]
    stalled_channel = channels(helper.target, options=small_window)
    stalled = book_summary(stalled_channel)(EMPTY, timeout=30)
    first = numbers(stalled, 1)[0]
    time.sleep(1.0)  # the stalled client's window is long full

    started = time.monotonic()
    seen = numbers(book_summary(channels(helper.target))(EMPTY, timeout=15), 100)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"100 summaries at 200/s took {elapsed:.2f} s"
    assert seen == sorted(set(seen))

    # The stalled client, once it reads again, jumps ahead: it never had the summaries it was too slow for.
    later = numbers(stalled, 300)
    assert later[-1] - first > 300 and any(b - a > 1 for a, b in zip(later, later[1:]))
    assert helper.stats()["skipped_total"] > 0


def test_health_reports_not_serving_until_told(start_helper: Start, channels: Callable[..., grpc.Channel]) -> None:
    helper = start_helper("--interval", "0")
    health = health_pb2_grpc.HealthStub(channels(helper.target))

    def status(service: str) -> int:
        return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

    assert status(SERVICE) == status("") == health_pb2.HealthCheckResponse.NOT_SERVING
    helper.command("serving on")
    assert status(SERVICE) == status("") == health_pb2.HealthCheckResponse.SERVING
    helper.command("serving off")
    assert status(SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.RpcError) as unknown:
        status("no.such.Service")
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


def test_reflection_describes_the_service(start_helper: Start, channels: Callable[..., grpc.Channel]) -> None:
    helper = start_helper("--interval", "0")
    database = ProtoReflectionDescriptorDatabase(channels(helper.target))
    assert {SERVICE, "grpc.health.v1.Health"} <= set(database.get_services())
    method = DescriptorPool(database).FindServiceByName(SERVICE).methods_by_name["BookSummary"]
    assert (method.input_type.full_name, method.output_type.full_name) == ("orderbook.Empty", "orderbook.Summary")
    assert method.server_streaming


def test_tls_client_with_the_ca_works_and_plaintext_is_refused(
    start_helper: Start, channels: Callable[..., grpc.Channel], tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    helper = start_helper("--interval", "0.02", "--tls-cert", str(cert), "--tls-key", str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(helper.target, credentials) as secure:
        summary = next(book_summary(secure)(EMPTY, timeout=10))
        assert summary.bids[0].exchange == "binance" and summary.bids[0].price == 0.05123
    with pytest.raises(grpc.RpcError) as refused:
        next(book_summary(channels(helper.target))(EMPTY, timeout=5))
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def test_sigterm_ends_open_streams_unavailable_and_exits_zero_quickly(
    start_helper: Start, channels: Callable[..., grpc.Channel]
) -> None:
    helper = start_helper("--interval", "0.02")
    method = book_summary(channels(helper.target))
    calls = [method(EMPTY, timeout=15) for _ in range(3)]
    for call in calls:
        numbers(call, 1)
    started = time.monotonic()
    helper.proc.send_signal(signal.SIGTERM)
    for call in calls:
        with pytest.raises(grpc.RpcError):
            for _ in call:  # drains what was already sent, then the stream ends: never normally
                pass
        assert (call.code(), call.details()) == (grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
    assert helper.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 3.0


def test_killed_client_process_is_noticed_and_its_stream_ended(start_helper: Start) -> None:
    helper = start_helper("--interval", "0.05")
    client = subprocess.Popen([str(CLIENT), "--addr", helper.target, "--json"], stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    client.stdout.readline()
    assert helper.stats()["open_streams"] == 1
    client.kill()
    client.wait()
    client.stdout.close()
    deadline = time.monotonic() + 3
    while helper.stats()["open_streams"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert helper.stats()["open_streams"] == 0


def start_error(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(HELPER), *args], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 2, result.stderr[-2000:]
    return result.stdout


@pytest.mark.usefixtures("starts_processes")
def test_port_in_use_is_a_clear_error_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        assert start_error("--address", address) == (
            f"ERROR AddressInUse: cannot listen on {address}: address already in use\n"
        )


@pytest.mark.usefixtures("starts_processes")
def test_unusable_tls_files_are_a_clear_error(tmp_path: Path) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    assert start_error("--tls-cert", str(not_pem), "--tls-key", str(not_pem)) == (
        f"ERROR ServerStartError: cannot listen on 127.0.0.1:0: the TLS certificate {not_pem} or key {not_pem}"
        " was rejected (not PEM, or not a pair)\n"
    )
    missing = tmp_path / "missing.pem"
    assert start_error("--tls-cert", str(missing), "--tls-key", str(not_pem)) == (
        f"ERROR ServerStartError: cannot read TLS file {missing}: No such file or directory\n"
    )
