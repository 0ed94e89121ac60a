"""Streams come and go without leaving anything behind: churn, a killed client, and a SIGTERM with streams open."""

from __future__ import annotations

import signal
import threading
import time

import grpc
from clients_support import METHOD, StreamGroup, scrape

from orderbook.proto import orderbook_pb2
from tests.support.waiting import wait_until

CYCLES = 1000
WORKERS = 8
GREENLET_SLACK = 5
FD_SLACK = 5
CHURN_MEMORY_BOUND = 20 << 20


def open_streams(metrics_port: int) -> float:
    return scrape(metrics_port).value("orderbook_grpc_open_streams")


def churn(target: str, cycles: int, workers: int) -> list[BaseException]:
    """``cycles`` times: open a stream, receive one summary, cancel; spread over ``workers`` threads and one channel."""
    errors: list[BaseException] = []
    remaining = iter(range(cycles))
    lock = threading.Lock()
    with grpc.insecure_channel(target) as channel:
        method: grpc.UnaryStreamMultiCallable[orderbook_pb2.Empty, bytes] = channel.unary_stream(
            METHOD, request_serializer=orderbook_pb2.Empty.SerializeToString)

        def work() -> None:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                call = method(orderbook_pb2.Empty(), timeout=10)
                try:
                    next(call)
                except (grpc.RpcError, StopIteration) as error:
                    errors.append(error)
                finally:
                    call.cancel()

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return errors


def test_a_thousand_stream_cycles_leave_no_greenlets_fds_or_memory_behind(simulator_factory, server_factory):
    simulator = simulator_factory("--seed", "5", "--rate", "50")
    server = server_factory(simulator.urls)
    server.wait_serving()
    port = server.metrics_port
    assert churn(server.target, 50, WORKERS) == []  # warm up: lazily created server state is not a leak
    wait_until(lambda: open_streams(port), 10, "warm-up streams closed", accept=lambda n: n == 0)
    before = scrape(port)

    started = time.monotonic()
    errors = churn(server.target, CYCLES, WORKERS)
    elapsed = time.monotonic() - started
    assert errors == []
    assert elapsed < 60

    wait_until(lambda: open_streams(port), 10, "open streams back to the baseline",
               accept=lambda n: n == before.value("orderbook_grpc_open_streams"))
    # Stream greenlets and sockets finish asynchronously after the cancel: give them a moment to go.
    after = wait_until(
        lambda: scrape(port), 10, "greenlets and fds back to the baseline",
        accept=lambda s: s.value("orderbook_greenlets") <= before.value("orderbook_greenlets") + GREENLET_SLACK
        and s.value("process_open_fds") <= before.value("process_open_fds") + FD_SLACK,
    )
    names = ("orderbook_greenlets", "process_open_fds", "process_resident_memory_bytes")
    print(f"\n{CYCLES} cycles in {elapsed:.1f} s; before/after: "
          + ", ".join(f"{name} {before.value(name):.0f}/{after.value(name):.0f}" for name in names))
    grown = after.value("process_resident_memory_bytes") - before.value("process_resident_memory_bytes")
    assert grown < CHURN_MEMORY_BOUND
    assert after.value("orderbook_summaries_sent_total") - before.value("orderbook_summaries_sent_total") >= CYCLES
    assert server.proc.poll() is None
    assert "Traceback" not in server.log()


def test_a_killed_client_s_streams_are_cleaned_up(simulator_factory, server_factory, client_process_factory):
    simulator = simulator_factory("--seed", "6", "--rate", "20")
    server = server_factory(simulator.urls)
    server.wait_serving()
    port = server.metrics_port
    baseline = open_streams(port)
    client = client_process_factory(server.target, "--streams", "3")
    client.wait_ready()
    wait_until(lambda: open_streams(port), 10, "the client's streams open", accept=lambda n: n == baseline + 3)

    client.proc.send_signal(signal.SIGKILL)  # no goodbye: no cancel, no RST_STREAM, no GOAWAY
    client.proc.wait(5)
    killed_at = time.monotonic()
    wait_until(lambda: open_streams(port), 5, "the killed client's streams closed", accept=lambda n: n == baseline)
    print(f"\nstreams closed {time.monotonic() - killed_at:.2f} s after SIGKILL")
    assert server.proc.poll() is None


def test_sigterm_with_200_streams_open_ends_them_unavailable_and_exits_0_within_2_s(simulator_factory, server_factory):
    simulator = simulator_factory("--seed", "8", "--rate", "20")
    server = server_factory(simulator.urls, "--max-streams-per-connection", "200")  # all 200 on one connection
    server.wait_serving()
    streams = StreamGroup(server.target, 200)
    try:
        wait_until(streams.started, 20, "200 streams receiving", accept=lambda n: n == 200)
        wait_until(lambda: open_streams(server.metrics_port), 10, "200 streams open", accept=lambda n: n == 200)

        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        exit_code = server.proc.wait(10)
        exit_seconds = time.monotonic() - signalled
        assert streams.join(5), f"only {streams.ended()} of 200 streams ended"
    finally:
        streams.close()

    codes = [stats.code for stats in streams.stats]
    last_end = max(stats.ended_at for stats in streams.stats if stats.ended_at is not None) - signalled
    print(f"\nexit {exit_code} {exit_seconds:.2f} s after SIGTERM; streams ended by {last_end:.2f} s; "
          f"OK {codes.count(grpc.StatusCode.OK)}, UNAVAILABLE {codes.count(grpc.StatusCode.UNAVAILABLE)}")
    assert exit_code == 0
    assert exit_seconds < 2.0
    assert set(codes) == {grpc.StatusCode.UNAVAILABLE}  # never OK, which a client would take as the book's end
    assert "Traceback" not in server.log()
