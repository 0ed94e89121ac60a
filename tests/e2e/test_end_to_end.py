"""The whole system as a user runs it: simulator, bin/run-server and gRPC clients, separate processes."""

from __future__ import annotations

from tests.support.service import Book, wait_until_matches_truth

BOTH = {"binance", "bitstamp"}


def test_served_top10_equals_the_true_merged_book_after_traffic_and_a_crossing(
    simulator_factory, server_factory, reader_factory
):
    simulator = simulator_factory("--seed", "7", "--rate", "300", "--snapshot-delay", "0.3")
    server = server_factory(simulator.urls)
    server.wait_serving()
    reader = reader_factory(server.target)
    reader.wait_for(lambda book: book.exchanges() == BOTH and len(book.bids) == 10, 10, "with both exchanges")

    simulator.control.cross()
    reader.wait_for(lambda book: book.spread is not None and book.spread < 0, 10, "with the venues crossed")
    received_before = reader.received
    reader.wait_for(lambda book: reader.received > received_before + 200, 20, "after more traffic")

    simulator.control.pause()
    served = wait_until_matches_truth(reader, lambda: Book.from_truth(simulator.control.truth(10)["merged"]), 5)
    assert len(served.bids) == len(served.asks) == 10
    assert served.exchanges() == BOTH
    assert reader.min_spread < 0
    assert server.proc.poll() is None
    assert server.terminate() == 0
    assert "Traceback" not in server.log()


def test_a_second_client_gets_the_current_summary_at_once(simulator_factory, server_factory, reader_factory):
    simulator = simulator_factory("--seed", "3", "--rate", "50")
    server = server_factory(simulator.urls)
    server.wait_serving()
    first = reader_factory(server.target)
    first.wait_for(lambda book: book.exchanges() == BOTH, 10, "with both exchanges")
    simulator.control.pause()
    settled = wait_until_matches_truth(first, lambda: Book.from_truth(simulator.control.truth(10)["merged"]), 5)

    late = reader_factory(server.target)
    assert late.wait_for(lambda book: True, 5, "at all") == settled
