"""Real venue habits the simulator imitates, checked in-process (no sockets, a fake clock): Bitstamp's lagging REST
book, junk rows in its snapshots, a silently lost change, a sweep through the model's book."""

from __future__ import annotations

import json

import pytest

from orderbook.book import VenueBook
from orderbook.prices import parse_decimal
from orderbook.simulator.binance import BinanceExchange
from orderbook.simulator.bitstamp import BitstampExchange
from orderbook.simulator.config import ConfigError, SimulatorConfig
from orderbook.simulator.faults import FaultError
from orderbook.simulator.market import LOT, TICK, BookChange, ModelParams, VenueModel
from orderbook.simulator.simulator import Simulator
from orderbook.simulator.wire import Request

P = 5_000 * TICK  # 0.05


def snapshot(exchange: BitstampExchange) -> dict:
    response = exchange.rest(Request("GET", "/api/v2/order_book/ethbtc/", {}, {}, b"", ("127.0.0.1", 1)))
    assert response is not None and response.status == 200
    return json.loads(response.body)


def book_of(body: dict) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return ([(parse_decimal(p), parse_decimal(a)) for p, a in body["bids"]],
            [(parse_decimal(p), parse_decimal(a)) for p, a in body["asks"]])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lagged_bitstamp(lag: float) -> tuple[BitstampExchange, Clock]:
    exchange = BitstampExchange("ethbtc", rest_lag=lag)
    clock = Clock()
    exchange.clock = clock
    exchange.load_recorded(1_000_000_000_000_000, [(P - TICK, 10 * LOT)], [(P + TICK, 10 * LOT)])
    return exchange, clock


def test_rest_lag_serves_the_book_and_microtimestamp_of_lag_seconds_ago_for_model_events():
    exchange, clock = lagged_bitstamp(1.0)
    stamps = {}
    for step in range(1, 5):  # a new bid level every 0.5 s
        clock.now = 100.0 + 0.5 * step
        exchange.publish(BookChange(((P - (step + 1) * TICK, step * LOT),), ()))
        stamps[clock.now] = exchange.microtimestamp
    clock.now = 102.2  # the changes of 100.5, 101.0 are >= 1 s old; those of 101.5, 102.0 are not
    body = snapshot(exchange)
    assert int(body["microtimestamp"]) == stamps[101.0]
    assert body["timestamp"] == str(stamps[101.0] // 1_000_000)
    assert book_of(body)[0] == [(P - TICK, 10 * LOT), (P - 2 * TICK, LOT), (P - 3 * TICK, 2 * LOT)]
    assert exchange.truth.bid_depth == 5  # the truth is current
    assert exchange.stats()["rest_lag_pending"] == 2
    clock.now = 103.0
    body = snapshot(exchange)
    assert int(body["microtimestamp"]) == exchange.microtimestamp == stamps[102.0]
    assert book_of(body) == (exchange.truth.bids(), exchange.truth.asks())
    assert exchange.stats()["rest_lag_pending"] == 0  # memory: only the changes younger than the lag


def test_rest_lag_follows_replayed_frames_too():
    exchange, clock = lagged_bitstamp(0.5)
    first_us = 1_000_000_000_000_000
    for step in range(1, 4):
        clock.now = 100.0 + 0.3 * step
        us = first_us + step * 1000
        exchange.publish_recorded({"data": {"timestamp": str(us // 1_000_000), "microtimestamp": str(us),
                                            "bids": [[f"{(P - TICK) / 1e12:.8f}", f"{step}.00000000"]], "asks": []},
                                   "channel": "diff_order_book_ethbtc", "event": "data"})
    clock.now = 100.95  # the frame of 100.3 is old enough, those of 100.6 and 100.9 are not
    body = snapshot(exchange)
    assert int(body["microtimestamp"]) == first_us + 1000
    assert book_of(body)[0] == [(P - TICK, 1 * 10**8 * LOT)]
    assert exchange.microtimestamp == first_us + 3000


def test_rest_lag_zero_is_the_current_book_and_can_be_switched_at_run_time():
    exchange, clock = lagged_bitstamp(0.0)
    exchange.publish(BookChange(((P - 2 * TICK, LOT),), ()))
    body = snapshot(exchange)
    assert int(body["microtimestamp"]) == exchange.microtimestamp
    assert book_of(body) == (exchange.truth.bids(), exchange.truth.asks())
    assert exchange.rest_lag_fault(2.0) == 2.0
    before = (snapshot(exchange), exchange.microtimestamp)
    clock.now += 1.0
    exchange.publish(BookChange(((P - 3 * TICK, LOT),), ()))
    assert snapshot(exchange) == before[0]  # the book as it was when the lag was switched on
    assert exchange.rest_lag_fault(0.0) == 0.0
    assert book_of(snapshot(exchange))[0] == exchange.truth.bids()
    assert exchange.stats()["faults"] == {"rest_lag": 2}
    with pytest.raises(FaultError):
        exchange.rest_lag_fault(-1.0)


def test_rest_lag_a_silently_lost_change_reaches_the_lagged_book_with_the_same_microtimestamp():
    exchange, clock = lagged_bitstamp(1.0)
    us = exchange.microtimestamp
    answer = exchange.lose_change("ask", 0)
    assert answer == {"price": "0.05001000", "amount": "0.00000021", "side": "ask"}
    assert snapshot(exchange)["asks"] == [["0.05001000", "0.00000010"]]
    clock.now += 1.0
    assert snapshot(exchange)["asks"] == [["0.05001000", "0.00000021"]]
    assert exchange.microtimestamp == us and int(snapshot(exchange)["microtimestamp"]) == us


def test_junk_rows_end_every_snapshot_s_bids_and_stay_out_of_the_truth():
    exchange = BitstampExchange("ethbtc", junk_rows=True)
    exchange.load([(P - TICK, LOT)], [(P + TICK, LOT)])
    response = exchange.rest(Request("GET", "/api/v2/order_book/ethbtc/", {}, {}, b"", ("127.0.0.1", 1)))
    assert response is not None
    assert b'"bids": [["0.04999000", "0.00000001"], ["0.00000000", "1.00000000"], null], "asks"' in response.body
    assert json.loads(response.body)["bids"][-2:] == [["0.00000000", "1.00000000"], None]
    assert exchange.truth.bids() == [(P - TICK, LOT)]
    assert exchange.stats()["junk_snapshots_sent"] == 1


def test_lose_change_changes_the_truth_and_the_model_and_consumes_no_id():
    model = VenueModel("1:binance", ModelParams(levels=30))
    exchange = BinanceExchange("ETHBTC", seed=1)
    exchange.load(*model.levels())
    exchange.model = model
    last_id = exchange.last_update_id
    price, amount = exchange.truth.top_bids(3)[2]
    answer = exchange.lose_change("bid", 2)
    assert answer["price"] == f"{price / 1e12:.8f}" and parse_decimal(answer["amount"]) == 2 * amount + LOT
    assert exchange.truth.top_bids(3)[2] == (price, 2 * amount + LOT)
    assert model.levels() == (exchange.truth.bids(), exchange.truth.asks())  # the model knows it too
    assert exchange.last_update_id == last_id and exchange.counters["events"] == 0
    assert exchange.stats()["faults"] == {"lose_change": 1}
    with pytest.raises(FaultError, match="side"):
        exchange.lose_change("middle", 0)
    with pytest.raises(FaultError, match="only"):
        exchange.lose_change("ask", 10_000)


def test_sweep_removes_the_best_levels_in_one_event_and_the_model_carries_on_sanely():
    model = VenueModel("4:bitstamp", ModelParams(levels=60))
    book = VenueBook()
    book.load(*model.levels())
    old_bids = book.bids()
    change = model.sweep(True, 20)
    assert change.asks == () and [p for p, _ in change.bids] == [p for p, _ in old_bids[:20]]
    assert all(amount == 0 for _, amount in change.bids)
    book.apply(change.bids, change.asks)
    assert book.top_bids(1) == old_bids[20:21]
    for _ in range(3000):
        change = model.step()
        book.apply(change.bids, change.asks)
        assert not book.is_crossed()
    assert (book.bids(), book.asks()) == model.levels()
    assert 60 <= book.bid_depth <= 70
    # The quote target was left alone: the best bid has walked back up to within a few ticks of the best ask.
    assert book.top_asks(1)[0][0] - book.top_bids(1)[0][0] <= 10 * TICK
    with pytest.raises(ValueError):
        model.sweep(False, book.ask_depth)


def test_sweep_needs_a_model_and_leaves_a_level():
    exchange = BitstampExchange("ethbtc")
    exchange.load([(P - TICK, LOT), (P - 2 * TICK, LOT)], [(P + TICK, LOT)])
    with pytest.raises(FaultError, match="replaying"):
        exchange.sweep("bid", 1)
    simulator = Simulator(SimulatorConfig(levels=10, paused=True))
    with pytest.raises(FaultError, match="at least one"):
        simulator.inject("sweep", {"exchange": "binance", "levels": simulator.binance.truth.bid_depth})
    answer = simulator.inject("sweep", {"exchange": "bitstamp", "side": "ask", "levels": 3})
    assert answer["removed"] == 3 and simulator.bitstamp.counters["events"] == 1


def test_fault_parameters_are_typed():
    simulator = Simulator(SimulatorConfig(levels=10, paused=True))
    with pytest.raises(FaultError, match="required"):
        simulator.inject("rest_lag", {})
    with pytest.raises(FaultError, match="seconds must be float"):
        simulator.inject("rest_lag", {"seconds": "1"})
    assert simulator.inject("rest_lag", {"seconds": 1}) == {"fault": "rest_lag", "exchange": "bitstamp", "lag": 1.0}
    with pytest.raises(FaultError, match="exchange must be one of"):
        simulator.inject("rest_lag", {"exchange": "binance", "seconds": 1.0})
    with pytest.raises(FaultError, match="does not answer"):
        simulator.inject("rest", {"exchange": "binance", "status": "200_error"})
    with pytest.raises(FaultError, match="does not answer"):
        simulator.inject("rest", {"exchange": "bitstamp", "status": 403})
    with pytest.raises(FaultError, match="close_after"):
        simulator.inject("server_shutdown", {"close_after": -1})


@pytest.mark.parametrize("settings", [
    {"binance_max_client_messages": 0},
    {"binance_max_connection_age": 0.0},
    {"binance_max_connection_age": 10.0, "binance_shutdown_notice": 10.0},
    {"binance_shutdown_notice": -1.0},
    {"bitstamp_rest_lag": -0.1},
    {"bitstamp_rest_lag": 61.0},
])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ConfigError):
        SimulatorConfig(**settings)
