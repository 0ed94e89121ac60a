"""The exchange parsers, on every real recorded frame and on every kind of frame they must refuse.

Expected values are computed here from the raw JSON with ``Decimal``, not with the product's number code.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from orderbook.exchanges.base import ErrorBody, Venue
from orderbook.exchanges.binance import BinanceVenue
from orderbook.exchanges.bitstamp import BitstampVenue
from orderbook.exchanges.messages import PAUSE_EVERY, BadMessage, BookDiff, BookSnapshot, Notice, ReconnectRequest
from orderbook.exchanges.binance import BinanceSync
from orderbook.exchanges.bitstamp import BitstampSync
from tests.recordings import control_events, params

ONE = 10**12


def scaled(text: str) -> int:
    """The exact scaled integer for a decimal string, via Decimal (independent of orderbook.prices)."""
    value = Decimal(text).scaleb(12)
    assert value == value.to_integral_value(), text
    return int(value)


def expected_levels(raw: list[list[str]]) -> tuple[tuple[int, int], ...]:
    return tuple((scaled(price), scaled(amount)) for price, amount in raw)


def binance() -> BinanceVenue:
    return BinanceVenue("wss://stream.binance.com:9443", "https://api.binance.com")


def bitstamp() -> BitstampVenue:
    return BitstampVenue("wss://ws.bitstamp.net", "https://www.bitstamp.net")


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def bad(parse, raw) -> BadMessage:
    with pytest.raises(BadMessage) as caught:
        parse(raw)
    return caught.value


# -- recorded frames -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_set", params("binance"))
def test_binance_recorded_frames_parse_in_both_endpoint_shapes(data_set):
    protocol = binance()
    for frame, event in zip(data_set.frames, data_set.events(), strict=True):
        combined = protocol.parse_message(frame)
        raw_shape = protocol.parse_message(dumps(event))  # what /ws/<stream> sends: the event alone
        assert combined == raw_shape
        assert combined == BookDiff(
            event["U"], event["u"], event["E"] / 1e3, expected_levels(event["b"]), expected_levels(event["a"]),
            symbol=data_set.symbol,
        )
        assert protocol.parse_message(frame.encode()) == combined  # websocket-client may hand over bytes


@pytest.mark.parametrize("data_set", params("binance"))
def test_binance_recorded_snapshot_parses(data_set):
    body = data_set.snapshot()
    snapshot = binance().parse_snapshot(data_set.snapshot_body)
    assert snapshot == BookSnapshot(
        data_set.snapshot_id, expected_levels(body["bids"]), expected_levels(body["asks"])
    )
    assert snapshot.last_id == body["lastUpdateId"]
    assert len(snapshot.bids) > 0 and len(snapshot.asks) > 0


@pytest.mark.parametrize("data_set", params("bitstamp"))
def test_bitstamp_recorded_frames_parse(data_set):
    protocol = bitstamp()
    for frame, event in zip(data_set.frames, data_set.events(), strict=True):
        diff = protocol.parse_message(frame)
        microtimestamp = int(event["microtimestamp"])
        assert diff == BookDiff(
            microtimestamp,
            microtimestamp,
            microtimestamp / 1e6,
            expected_levels(event["bids"]),
            expected_levels(event["asks"]),
            symbol=data_set.symbol,
        )


@pytest.mark.parametrize("data_set", params("bitstamp"))
def test_bitstamp_recorded_snapshot_parses(data_set):
    body = data_set.snapshot()
    snapshot = bitstamp().parse_snapshot(data_set.snapshot_body)
    assert snapshot == BookSnapshot(
        data_set.snapshot_id, expected_levels(body["bids"]), expected_levels(body["asks"])
    )
    assert len(snapshot.bids) > 0 and len(snapshot.asks) > 0


def test_bitstamp_recorded_control_events_are_notices():
    events = control_events()
    assert len(events) > 0
    for frame in events:
        channel = json.loads(frame)["channel"]
        symbol = channel.removeprefix("diff_order_book_").upper() if channel.startswith("diff_order_book_") else ""
        assert bitstamp().parse_message(frame) == Notice("subscribed", symbol)


# -- control frames ------------------------------------------------------------------------------------------------


def test_binance_server_shutdown_asks_for_a_reconnect():
    protocol = binance()
    event = {"e": "serverShutdown", "E": 1700000000000}
    assert protocol.parse_message(dumps(event)) == ReconnectRequest("server_shutdown")
    # the combined-stream form the docs give it (2026-05): its own stream name, "!serverShutdown"
    wrapped = {"stream": "!serverShutdown", "data": event}
    assert protocol.parse_message(dumps(wrapped)) == ReconnectRequest("server_shutdown")


def test_binance_method_result_is_a_notice():
    assert binance().parse_message('{"result":null,"id":1}') == Notice("method_result")


@pytest.mark.parametrize("data", ["", None, {}])
def test_bitstamp_request_reconnect(data):
    frame = dumps({"event": "bts:request_reconnect", "channel": "", "data": data})
    assert bitstamp().parse_message(frame) == ReconnectRequest("request_reconnect")


def test_bitstamp_heartbeat_reply_is_a_notice():
    frame = '{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}'
    assert bitstamp().parse_message(frame) == Notice("heartbeat")


def test_bitstamp_subscribes_one_channel_a_message_and_acks_name_their_symbol():
    protocol = bitstamp()
    assert [json.loads(m) for m in protocol.subscribe_messages(["ETHBTC", "BTCUSD"])] == [
        {"event": "bts:subscribe", "data": {"channel": "diff_order_book_ethbtc"}},
        {"event": "bts:subscribe", "data": {"channel": "diff_order_book_btcusd"}},
    ]
    assert json.loads(protocol.heartbeat_message()) == {"event": "bts:heartbeat"}
    ack = protocol.parse_message('{"event":"bts:subscription_succeeded","channel":"diff_order_book_btcusd","data":{}}')
    assert ack == Notice("subscribed", "BTCUSD")
    assert protocol.confirms_subscription(ack)


def test_binance_subscribes_in_batches_of_a_hundred_streams():
    symbols = [f"S{index:03d}BTC" for index in range(250)]
    messages = [json.loads(m) for m in binance().subscribe_messages(symbols)]
    assert [m["id"] for m in messages] == [1, 2, 3]
    assert [len(m["params"]) for m in messages] == [100, 100, 50]
    assert all(m["method"] == "SUBSCRIBE" for m in messages)
    assert [p for m in messages for p in m["params"]] == [f"{s.lower()}@depth@100ms" for s in symbols]


def test_urls():
    assert binance().stream_url == "wss://stream.binance.com:9443/stream"
    assert binance().snapshot_url("ETHBTC") == ("https://api.binance.com/api/v3/depth?symbol=ETHBTC&limit=1000"
                                                "&symbolStatus=TRADING")
    assert binance().listing_url == "https://api.binance.com/api/v3/exchangeInfo?showPermissionSets=false"
    custom = BinanceVenue("ws://127.0.0.1:9/", "http://127.0.0.1:8/", snapshot_limit=5000)
    assert custom.stream_url == "ws://127.0.0.1:9/stream"
    assert custom.snapshot_url("BTCUSDT") == ("http://127.0.0.1:8/api/v3/depth?symbol=BTCUSDT&limit=5000"
                                              "&symbolStatus=TRADING")
    assert bitstamp().stream_url == "wss://ws.bitstamp.net/"
    assert bitstamp().snapshot_url("ETHBTC") == "https://www.bitstamp.net/api/v2/order_book/ethbtc/"
    assert bitstamp().listing_url == "https://www.bitstamp.net/api/v2/markets/"
    assert bitstamp().listing_fallback_url == "https://www.bitstamp.net/api/v2/trading-pairs-info/"
    assert binance().listing_fallback_url is None
    assert BinanceVenue().rest_base == BinanceVenue.default_rest_url  # the defaults live with the venue


def test_listings_name_the_symbols_trading_now():
    info = {"timezone": "UTC", "symbols": [
        {"symbol": "ETHBTC", "status": "TRADING"}, {"symbol": "OLDBTC", "status": "BREAK"}, {"symbol": 5},
        "junk", {"status": "TRADING"}]}
    listing = binance().parse_listing(dumps(info).encode())
    assert listing.trading == {"ETHBTC"}
    assert dict(listing.statuses) == {"ETHBTC": "TRADING", "OLDBTC": "BREAK"}
    assert "OLDBTC" in listing and "XYZBTC" not in listing  # listed, whatever its status
    pairs = [{"name": "ETH/BTC", "url_symbol": "ethbtc", "trading": "Enabled"},
             {"name": "XYZ/USD", "url_symbol": "xyzusd", "trading": "Disabled"}, {"url_symbol": None}, 7]
    listing = bitstamp().parse_listing(dumps(pairs).encode())
    assert listing.trading == {"ETHBTC"} and dict(listing.statuses) == {"ETHBTC": "Enabled", "XYZUSD": "Disabled"}
    for venue, body in ((binance(), b"[]"), (binance(), b'{"symbols": {}}'), (bitstamp(), b"{}"), (bitstamp(), b"<")):
        with pytest.raises(BadMessage):
            venue.parse_listing(body)


def test_each_protocol_makes_its_own_sync():
    assert type(binance().new_sync()) is BinanceSync
    assert type(bitstamp().new_sync()) is BitstampSync


# -- frames to refuse ----------------------------------------------------------------------------------------------

BINANCE_DIFF = {"e": "depthUpdate", "E": 1700000000123, "s": "ETHBTC", "U": 10, "u": 12,
                "b": [["0.05123000", "1.5"]], "a": [["0.05124000", "0"]]}
BITSTAMP_DIFF: dict[str, Any] = {"data": {"timestamp": "1641343691", "microtimestamp": "1641343691591603",
                          "bids": [["0.06310274", "1.5"]], "asks": [["0.06311", "0.00000000"]]},
                 "channel": "diff_order_book_ethbtc", "event": "data"}


def binance_diff(**changes):
    return dumps({**BINANCE_DIFF, **changes})


def bitstamp_diff(**changes):
    return dumps({**BITSTAMP_DIFF, "data": {**BITSTAMP_DIFF["data"], **changes}})


def test_the_templates_parse():
    assert binance().parse_message(binance_diff()) == BookDiff(
        10, 12, 1700000000.123, ((51_230_000_000, 3 * ONE // 2),), ((51_240_000_000, 0),), symbol="ETHBTC"
    )
    assert bitstamp().parse_message(bitstamp_diff()) == BookDiff(
        1641343691591603, 1641343691591603, 1641343691.591603,
        ((63_102_740_000, 3 * ONE // 2),), ((63_110_000_000, 0),), symbol="ETHBTC",
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not_json"),
        ("", "not_json"),
        (b"\xff\xfe\x00", "not_json"),
        ('{"e":"depthUpdate"', "not_json"),
        ("[1, 2]", "unknown_shape"),
        ('"depthUpdate"', "unknown_shape"),
        ("42", "unknown_shape"),
        ("null", "unknown_shape"),
        ('{"stream":"ethbtc@depth@100ms","data":[1]}', "unknown_shape"),
        ('{"stream":"ethbtc@depth@100ms","data":"x"}', "unknown_shape"),
        ('{"e":"trade","E":1,"s":"ETHBTC"}', "unknown_event"),
        ("{}", "unknown_event"),
        ('{"code":-1121,"msg":"Invalid symbol."}', "unknown_event"),
        ('{"error":{"code":2,"msg":"Invalid request"},"id":1}', "exchange_error"),
    ],
)
def test_binance_unreadable_frames_do_not_lose_data(raw, reason):
    # a lost Binance frame shows up as a gap in the ids, so an unreadable one does not break the book by itself
    error = bad(binance().parse_message, raw)
    assert (error.reason, error.loses_data) == (reason, False)


def test_binance_diffs_name_their_symbol():
    diff = binance().parse_message(binance_diff(s="BTCUSDT"))
    assert isinstance(diff, BookDiff) and diff.symbol == "BTCUSDT"
    error = bad(binance().parse_message, dumps({k: v for k, v in BINANCE_DIFF.items() if k != "s"}))
    assert (error.reason, error.loses_data) == ("wrong_symbol", False)
    error = bad(binance().parse_message, binance_diff(s=7))
    assert error.reason == "wrong_symbol"


def test_a_bad_diff_names_the_symbol_whose_book_lost_it():
    assert bad(binance().parse_message, binance_diff(s="BTCUSDT", U=20, u=12)).symbol == "BTCUSDT"
    assert bad(bitstamp().parse_message, bitstamp_diff(bids="x")).symbol == "ETHBTC"
    assert bad(bitstamp().parse_message, "not json").symbol == ""  # cannot be told: every book on the connection


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"b": [["abc", "1"]]}, "bad_number"),
        ({"b": [["-0.05", "1"]]}, "bad_number"),
        ({"a": [["0.05", "-1"]]}, "bad_number"),
        ({"a": [["NaN", "1"]]}, "bad_number"),
        ({"a": [["0.05", "NaN"]]}, "bad_number"),
        ({"a": [["0.05", "inf"]]}, "bad_number"),
        ({"b": [[0.05, "1"]]}, "bad_number"),  # a JSON number, not a string
        ({"b": [["0.05", "1", "2"]]}, "bad_levels"),
        ({"b": [["0.05"]]}, "bad_levels"),
        ({"b": [5]}, "bad_levels"),
        ({"b": {"0.05": "1"}}, "bad_levels"),
        ({"b": None}, "bad_levels"),
        ({"a": "0.05"}, "bad_levels"),
        ({"U": "ten"}, "bad_id"),
        ({"u": -1}, "bad_id"),
        ({"U": 1.5}, "bad_id"),
        ({"U": True}, "bad_id"),
        ({"E": None}, "bad_id"),
        ({"U": 13, "u": 12}, "bad_id"),
    ],
)
def test_binance_bad_diffs_lose_data(changes, reason):
    error = bad(binance().parse_message, binance_diff(**changes))
    assert (error.reason, error.loses_data) == (reason, True)
    wrapped = dumps({"stream": "ethbtc@depth@100ms", "data": json.loads(binance_diff(**changes))})
    assert bad(binance().parse_message, wrapped).reason == reason


@pytest.mark.parametrize(
    ("raw", "reason", "loses_data"),
    [
        ("not json", "not_json", True),
        (b"\xff\xfe", "not_json", True),
        ("[1, 2]", "unknown_shape", True),
        ('"data"', "unknown_shape", True),
        ("null", "unknown_shape", True),
        ('{"event":"bts:error","channel":"","data":{"code":null,"message":"Invalid channel provided."}}',
         "exchange_error", False),
        ('{"result":null,"id":1}', "unknown_event", False),
        ('{"event":"trade","channel":"live_trades_ethbtc","data":{}}', "unknown_event", False),
        ('{"event":"data","channel":"diff_order_book_btcusd","data":{}}', "bad_id", True),
        ('{"event":"data","channel":"order_book_ethbtc","data":{}}', "wrong_channel", False),
        ('{"event":"data","channel":"diff_order_book_ethbtc","data":[]}', "unknown_shape", True),
        ('{"event":"data","channel":"diff_order_book_ethbtc","data":null}', "unknown_shape", True),
        ('{"event":"data","channel":"diff_order_book_ethbtc"}', "unknown_shape", True),
    ],
)
def test_bitstamp_unusable_frames(raw, reason, loses_data):
    # no sequence numbers: a frame that cannot be read at all may have been a diff
    error = bad(bitstamp().parse_message, raw)
    assert (error.reason, error.loses_data) == (reason, loses_data)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"bids": [["abc", "1"]]}, "bad_number"),
        ({"bids": [["0.06", "-1"]]}, "bad_number"),
        ({"asks": [["NaN", "1"]]}, "bad_number"),
        ({"asks": [["0.06", "1e3"]]}, "bad_number"),
        ({"asks": [["0.06", 1]]}, "bad_number"),
        ({"bids": None}, "bad_levels"),
        ({"asks": "x"}, "bad_levels"),
        ({"microtimestamp": "soon"}, "bad_id"),
        ({"microtimestamp": "-1641343691591603"}, "bad_id"),
        ({"microtimestamp": None}, "bad_id"),
    ],
)
def test_bitstamp_bad_diffs_lose_data(changes, reason):
    error = bad(bitstamp().parse_message, bitstamp_diff(**changes))
    assert (error.reason, error.loses_data) == (reason, True)


@pytest.mark.parametrize("level", ["12", {"1": "x", "2": "y"}])
def test_a_level_must_be_a_pair_of_strings(level):
    error = bad(binance().parse_message, binance_diff(b=[level]))
    assert error.loses_data


@pytest.mark.parametrize("protocol", [binance(), bitstamp()], ids=["binance", "bitstamp"])
def test_deeply_nested_json_is_a_bad_message(protocol):
    error = bad(protocol.parse_message, "[" * 100_000)
    assert error.reason == "not_json"


@pytest.mark.parametrize("zero", ["0", "0.0", "0.00000", "0.00000000", "00.000000000000"])
@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_zero_however_written_removes_the_level(zero, exchange):
    protocol: Venue
    if exchange == "binance":
        protocol, frame = binance(), binance_diff(b=[["0.05", zero]], a=[])
        snapshot = b'{"lastUpdateId": 11, "bids": [["0.05", "1"], ["0.04", "1"]], "asks": []}'
    else:
        protocol, frame = bitstamp(), bitstamp_diff(bids=[["0.05", zero]], asks=[])
        snapshot = b'{"microtimestamp": "1641343691000000", "bids": [["0.05", "1"], ["0.04", "1"]], "asks": []}'
    sync = protocol.new_sync()
    sync.on_snapshot(protocol.parse_snapshot(snapshot))
    diff = protocol.parse_message(frame)
    assert isinstance(diff, BookDiff) and sync.on_diff(diff).value == "applied"
    assert sync.book.bids() == [(40_000_000_000, ONE)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>", "not_json"),
        (b"[]", "unknown_shape"),
        (b'{"bids": [], "asks": []}', "bad_id"),
        (b'{"lastUpdateId": 5, "bids": [["x", "1"]], "asks": []}', "bad_number"),
        (b'{"lastUpdateId": 5, "bids": [], "asks": null}', "bad_levels"),
        (b'{"code": -1121, "msg": "Invalid symbol."}', "bad_id"),
    ],
)
def test_binance_bad_snapshots(body, reason):
    error = bad(binance().parse_snapshot, body)
    assert (error.reason, error.loses_data) == (reason, True)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>", "not_json"),
        (b'{"microtimestamp": "1", "bids": "", "asks": []}', "bad_levels"),
        (b'{"timestamp": "1", "bids": [], "asks": []}', "bad_id"),
        (b'{"microtimestamp": "1", "bids": [], "asks": [["1", "-1"]]}', "bad_number"),
    ],
)
def test_bitstamp_bad_snapshots(body, reason):
    assert bad(bitstamp().parse_snapshot, body).reason == reason


def test_binance_unknown_symbol_answer():
    protocol = binance()
    assert protocol.unknown_symbol(400, b'{"code":-1121,"msg":"Invalid symbol."}')
    assert not protocol.unknown_symbol(400, b'{"code":-1100,"msg":"Illegal characters found."}')
    assert not protocol.unknown_symbol(400, b"not json")
    assert not protocol.unknown_symbol(400, b"[-1121]")
    assert not protocol.unknown_symbol(429, b'{"code":-1121}')
    assert not protocol.unknown_symbol(500, b"")


def test_bitstamp_unknown_symbol_answer():
    protocol = bitstamp()
    assert protocol.unknown_symbol(404, b"<html>Not found</html>")
    assert not protocol.unknown_symbol(500, b"")
    assert not protocol.unknown_symbol(429, b"")


# -- rows a venue should not send, but does (docs/protocols.md) -----------------------------------------------------


def test_bitstamp_snapshot_with_a_zero_price_bid_and_a_null_row_keeps_the_real_levels():
    """Seen on Bitstamp: a bid at price 0 at the end of a snapshot (gocryptotrader's filterOrderbookZeroBidPrice)
    and a null row closing the bids (ccxt issue 13043). The rows go; the book stays."""
    body = (b'{"timestamp": "1641343695", "microtimestamp": "1641343695681418", '
            b'"bids": [["0.06310274", "1.5"], ["0.06300000", "2"], ["0.00000000", "1234.5"], null], '
            b'"asks": [["0.06311000", "0.25"]]}')
    snapshot = bitstamp().parse_snapshot(body)
    assert snapshot.bids == expected_levels([["0.06310274", "1.5"], ["0.06300000", "2"]])
    assert snapshot.asks == expected_levels([["0.06311000", "0.25"]])
    assert snapshot.ignored_rows == ("null_row", "zero_price")


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_a_diff_with_a_zero_price_row_applies_its_real_levels(exchange):
    rows = [["0.05100000", "3"], ["0", "1"]]
    if exchange == "binance":
        diff = binance().parse_message(binance_diff(b=rows, a=[["0.05200000", "1"]]))
    else:
        diff = bitstamp().parse_message(bitstamp_diff(bids=[*rows, None], asks=[["0.05200000", "1"]]))
    assert isinstance(diff, BookDiff)
    assert diff.bids == expected_levels([["0.05100000", "3"]])
    assert diff.asks == expected_levels([["0.05200000", "1"]])
    expected = ("zero_price",) if exchange == "binance" else ("null_row", "zero_price")
    assert diff.ignored_rows == expected


def test_a_clean_diff_reports_no_ignored_rows():
    diff = binance().parse_message(binance_diff())
    assert isinstance(diff, BookDiff) and diff.ignored_rows == ()


def test_bitstamp_error_body_with_http_200_is_an_error_not_a_book():
    with pytest.raises(ErrorBody) as caught:
        bitstamp().parse_snapshot(b'{"status": "error", "reason": "Rate limit exceeded", "code": "400.002"}')
    assert caught.value.rate_limited and caught.value.code == "400.002"
    with pytest.raises(ErrorBody) as caught:
        bitstamp().parse_snapshot(b'{"status": "error", "reason": "Something else", "code": "500.000"}')
    assert not caught.value.rate_limited


def test_bitstamp_reads_the_markets_endpoint_as_ccxt_does_after_pr_27924():
    # The rows ccxt's bitstamp fetchMarkets documents for GET /api/v2/markets/: market_symbol, market_type.
    rows = [
        {"name": "BTC/USD", "market_symbol": "btcusd", "base_currency": "BTC", "base_decimals": 8,
         "counter_currency": "USD", "counter_decimals": 0, "minimum_order_value": "10", "trading": "Enabled",
         "instant_order_counter_decimals": 2, "instant_and_market_orders": "Enabled",
         "description": "Bitcoin / U.S. dollar", "market_type": "SPOT"},
        {"name": "XYZ/USD", "market_symbol": "xyzusd", "trading": "Disabled", "market_type": "SPOT"},
        {"name": "BTC/USD-PERP", "market_symbol": "btcusd-perp", "trading": "Enabled", "market_type": "PERPETUAL"},
    ]
    listing = bitstamp().parse_listing(dumps(rows).encode())
    assert dict(listing.statuses) == {"BTCUSD": "Enabled", "XYZUSD": "Disabled"}  # no perpetual taken for a pair
    assert listing.trading == {"BTCUSD"}


def test_unicode_symbols_are_lower_cased_for_streams_and_encoded_in_urls():
    venue = binance()
    assert venue.stream_name("这是测试币456") == "这是测试币456@depth@100ms"
    assert venue.stream_path("这是测试币456") == "/ws/%E8%BF%99%E6%98%AF%E6%B5%8B%E8%AF%95%E5%B8%81456@depth@100ms"
    assert json.loads(venue.subscribe_messages(["这是测试币456"])[0])["params"] == ["这是测试币456@depth@100ms"]
    assert "这是测试币456" in venue.subscribe_messages(["这是测试币456"])[0]  # UTF-8 in the frame, not \\u escapes
    assert venue.snapshot_url("这是测试币456").startswith(
        "https://api.binance.com/api/v3/depth?symbol=%E8%BF%99%E6%98%AF%E6%B5%8B%E8%AF%95%E5%B8%81456&")
    assert bitstamp().names("ETHBTC") and not bitstamp().names("这是测试币456")


def test_a_status_mismatch_is_a_symbol_not_traded():
    assert binance().unknown_symbol(400, b'{"code":-1220,"msg":"The symbol\'s status does not match the requested '
                                         b'symbolStatus."}')
    assert binance().unknown_symbol(400, b'{"code":-1121,"msg":"Invalid symbol."}')
    assert not binance().unknown_symbol(400, b'{"code":-1100,"msg":"Illegal characters"}')


@pytest.mark.parametrize("exchange", ["binance", "bitstamp"])
def test_a_deep_snapshot_parsed_with_pauses_is_the_same_book_and_pauses_between_slices_of_json_and_levels(exchange):
    """The feed parses a snapshot on the hub, letting the readers run between slices of levels: the book is the
    one a parse in one go gives, junk rows dropped alike."""
    venue, id_field = (binance(), "lastUpdateId") if exchange == "binance" else (bitstamp(), "microtimestamp")
    bids = [[f"{50_000 - i * 0.01:.2f}", f"{1 + i % 7 * 0.125:.3f}"] for i in range(1_000)]
    asks = [[f"{50_000.01 + i * 0.01:.2f}", f"{1 + i % 5 * 0.25:.2f}"] for i in range(999)]
    body = json.dumps({id_field: "1700000000000000", "bids": [*bids, ["0.00000000", "12.5"], None],
                       "asks": asks}).encode()
    pauses = []
    paused = venue.parse_snapshot(body, pause=lambda: pauses.append(1))
    assert paused == venue.parse_snapshot(body)
    assert paused.bids == expected_levels(bids) and paused.asks == expected_levels(asks)
    assert paused.ignored_rows == ("null_row", "zero_price")
    loading = (1_002 - 1) // PAUSE_EVERY + (999 - 1) // PAUSE_EVERY  # between slices of each array's JSON
    parsing = 1 + (1_001 - 1) // PAUSE_EVERY + (999 - 1) // PAUSE_EVERY  # JSON loaded, between slices of levels
    assert len(pauses) == loading + parsing
