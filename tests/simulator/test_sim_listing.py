"""Each venue's listing (Binance ``GET /api/v3/exchangeInfo``, Bitstamp ``GET /api/v2/trading-pairs-info/``) and
symbols served on one venue only (``--binance-only-symbol``, ``--bitstamp-only-symbol``)."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
import requests
from simulator_support import connect, quiet_for, recv_json, recv_until

from orderbook.simulator.config import ConfigError, SimulatorConfig, from_args, parser
from orderbook.simulator.listing import (ExchangeInfoError, bitstamp_pair, exchange_info, parse_exchange_info_query,
                                         split_symbol)
from orderbook.simulator.process import SimulatorError, SimulatorProcess
from orderbook.simulator.simulator import Simulator
from tests.support.waiting import wait_until

BOTH = ("ETHBTC", "BTCUSDT")
BINANCE_ONLY = "BNBBTC"
BITSTAMP_ONLY = "XRPEUR"
WEIGHT_LIMIT = 100_000

SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'


@pytest.fixture(scope="module")
def listed(starts_processes):
    with SimulatorProcess("--paused", "--rate", "300", "--symbol", ",".join(BOTH),
                          "--binance-only-symbol", BINANCE_ONLY, "--bitstamp-only-symbol", BITSTAMP_ONLY,
                          "--binance-weight-limit", str(WEIGHT_LIMIT)) as process:
        yield process


def exchange_info_get(process: SimulatorProcess, query: str = "") -> requests.Response:
    """``query`` as written (already encoded where it should be), so the test controls the exact URL."""
    url = f"{process.urls['binance_rest']}/api/v3/exchangeInfo" + (f"?{query}" if query else "")
    return requests.get(url, timeout=5)


def used_weight(response: requests.Response) -> int:
    return int(response.headers["X-MBX-USED-WEIGHT-1M"])


def not_near_a_minute_boundary() -> None:
    """Binance's weight window is the clock minute: start a sequence of requests whose weights add up only when at
    least 5 s of the minute are left, so all of them land in one window."""
    wait_until(lambda: time.time() % 60 < 55, 6, "at least 5 s left in the current minute", interval=0.2)


# -- splitting a symbol --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("symbol", "base", "quote"), [
    ("ETHBTC", "ETH", "BTC"), ("BTCUSDT", "BTC", "USDT"), ("BNBBTC", "BNB", "BTC"), ("XRPEUR", "XRP", "EUR"),
    ("USDTUSD", "USDT", "USD"), ("BTCTUSD", "BTC", "TUSD"), ("BTCFDUSD", "BTC", "FDUSD"), ("NKNUSDT", "NKN", "USDT"),
    ("XRPPAX", "XRP", "PAX"), ("USDTEUR", "USDT", "EUR"), ("GBPUSD", "GBP", "USD"), ("btcusdc", "BTC", "USDC"),
    ("S000USDT", "S000", "USDT"), ("ABCDEF", "ABC", "DEF"), ("ABC", "A", "BC"), ("AB", "A", "B"),
])
def test_a_symbol_splits_into_its_base_and_quote(symbol, base, quote):
    assert split_symbol(symbol) == (base, quote)


def test_a_one_letter_symbol_names_no_pair_and_is_refused_at_start():
    with pytest.raises(ValueError, match="too short"):
        split_symbol("E")
    with pytest.raises(ConfigError, match="too short"):
        SimulatorConfig(symbol="E")


# -- configuration -------------------------------------------------------------------------------------------------


def test_one_venue_symbols_are_configured_beside_the_common_ones():
    config = from_args(parser().parse_args(["--symbol", "ETHBTC,BTCUSDT", "--binance-only-symbol", "BNBBTC,BNBETH",
                                            "--bitstamp-only-symbol", "XRPEUR"]))
    assert config.binance_only_symbols == ("BNBBTC", "BNBETH") and config.bitstamp_only_symbols == ("XRPEUR",)
    assert config.symbols == ("ETHBTC", "BTCUSDT", "BNBBTC", "BNBETH", "XRPEUR")
    assert config.binance_symbols == ("ETHBTC", "BTCUSDT", "BNBBTC", "BNBETH")
    assert config.bitstamp_symbols == ("ETHBTC", "BTCUSDT", "XRPEUR")
    assert from_args(parser().parse_args([])).symbols == ("ETHBTC",)  # none by default


@pytest.mark.parametrize("kwargs", [
    {"binance_only_symbols": ("ETHBTC",)},  # the default is on both venues
    {"extra_symbols": ("BTCUSDT",), "bitstamp_only_symbols": ("BTCUSDT",)},
    {"binance_only_symbols": ("XRPEUR",), "bitstamp_only_symbols": ("XRPEUR",)},  # that is --symbol's job
])
def test_a_symbol_is_on_both_venues_or_on_one_never_configured_twice(kwargs):
    with pytest.raises(ConfigError, match="listed twice"):
        SimulatorConfig(**kwargs)


def test_one_venue_symbols_are_checked_like_the_others():
    with pytest.raises(ConfigError, match="upper-case"):
        SimulatorConfig(bitstamp_only_symbols=("xrpeur",))
    with pytest.raises(ConfigError, match="replay serves one recorded symbol"):
        SimulatorConfig(binance_only_symbols=("BNBBTC",), replay_bitstamp="2021-04a_btcusdc")


def test_a_one_venue_symbol_s_market_is_the_one_it_has_on_both_venues():
    def markets(**kwargs) -> dict[str, tuple]:
        simulator = Simulator(SimulatorConfig(seed=3, paused=True, **kwargs))
        binance, bitstamp = simulator.markets["XRPEUR"]
        return {name: (market.model.levels(), [market.model.step() for _ in range(100)])  # type: ignore[union-attr]
                for name, market in (("binance", binance), ("bitstamp", bitstamp)) if market is not None}

    both = markets(extra_symbols=("XRPEUR",))
    assert markets(bitstamp_only_symbols=("XRPEUR",)) == {"bitstamp": both["bitstamp"]}
    assert markets(binance_only_symbols=("XRPEUR",)) == {"binance": both["binance"]}


# -- Binance exchangeInfo, pure ------------------------------------------------------------------------------------


LISTED = ("ETHBTC", "BTCUSDT")


@pytest.mark.parametrize(("query", "code", "msg"), [
    ({"symbol": "XRPEUR"}, -1121, "Invalid symbol."),
    ({"symbols": '["ETHBTC","XRPEUR"]'}, -1121, "Invalid symbol."),
    ({"symbol": "ethbtc"}, -1100,
     "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."),
    ({"symbol": ""}, -1100,
     "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."),
    ({"symbols": "ETHBTC"}, -1100,
     f"Illegal characters found in parameter 'symbols'; legal range is '{SYMBOLS_RANGE}'."),
    ({"symbols": "[]"}, -1100,
     f"Illegal characters found in parameter 'symbols'; legal range is '{SYMBOLS_RANGE}'."),
    ({"symbols": '["ETHBTC", "BTCUSDT"]'}, -1100,  # no spaces in the legal range
     f"Illegal characters found in parameter 'symbols'; legal range is '{SYMBOLS_RANGE}'."),
    ({"symbols": '["ETHBTC","ETHBTC"]'}, -1151, "Symbol is present multiple times in the list."),
    ({"symbol": "ETHBTC", "symbols": '["BTCUSDT"]'}, -1128, "Combination of optional parameters invalid."),
    ({"symbol": "ETHBTC", "permissions": "SPOT"}, -1128, "Combination of optional parameters invalid."),
    ({"symbols": '["ETHBTC"]', "symbolStatus": "TRADING"}, -1128, "Combination of optional parameters invalid."),
    ({"symbolStatus": "OPEN"}, -1122, "Invalid symbolStatus."),
    ({"permissions": "FUTURES"}, -1130, "Data sent for parameter 'permissions' is not valid."),
    ({"permissions": '["SPOT",'}, -1130, "Data sent for parameter 'permissions' is not valid."),
    ({"showPermissionSets": "yes"}, -1130, "Data sent for parameter 'showPermissionSets' is not valid."),
    ({"ETHBTC": ""}, -1104, "Not all sent parameters were read; read '0' parameter(s) but was sent '1'."),
    ({"symbol": "ETHBTC", "limit": "5"}, -1104,
     "Not all sent parameters were read; read '1' parameter(s) but was sent '2'."),
])
def test_exchange_info_refuses_what_the_docs_refuse(query, code, msg):
    with pytest.raises(ExchangeInfoError) as refused:
        parse_exchange_info_query(query, LISTED)
    assert (refused.value.code, refused.value.msg) == (code, msg)


def chosen(query: dict[str, str]) -> list[str]:
    body = exchange_info(parse_exchange_info_query(query, LISTED), LISTED, 6000, 1)
    return [entry["symbol"] for entry in body["symbols"]]


@pytest.mark.parametrize(("query", "symbols"), [
    ({}, ["ETHBTC", "BTCUSDT"]),
    ({"symbol": "BTCUSDT"}, ["BTCUSDT"]),
    ({"symbols": '["BTCUSDT","ETHBTC"]'}, ["BTCUSDT", "ETHBTC"]),  # in the order asked
    ({"permissions": "SPOT"}, ["ETHBTC", "BTCUSDT"]),
    ({"permissions": '["MARGIN","LEVERAGED"]'}, ["ETHBTC", "BTCUSDT"]),
    ({"permissions": "LEVERAGED"}, []),  # no simulated symbol has it
    ({"permissions": "TRD_GRP_004"}, []),
    ({"symbolStatus": "TRADING"}, ["ETHBTC", "BTCUSDT"]),
    ({"symbolStatus": "HALT"}, []),
    ({"symbolStatus": "BREAK", "permissions": "SPOT"}, []),
])
def test_exchange_info_filters_as_documented(query, symbols):
    assert chosen(query) == symbols


def test_exchange_info_body_has_the_documented_fields_in_order():
    body = exchange_info(parse_exchange_info_query({}, LISTED), LISTED, 1234, 1700000000000)
    assert list(body) == ["timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"]
    assert (body["timezone"], body["serverTime"], body["exchangeFilters"]) == ("UTC", 1700000000000, [])
    assert body["rateLimits"][0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                     "limit": 1234}
    assert [limit["rateLimitType"] for limit in body["rateLimits"]] == [
        "REQUEST_WEIGHT", "ORDERS", "ORDERS", "RAW_REQUESTS"]
    ethbtc = body["symbols"][0]
    assert list(ethbtc) == [
        "symbol", "status", "baseAsset", "baseAssetPrecision", "quoteAsset", "quotePrecision", "quoteAssetPrecision",
        "baseCommissionPrecision", "quoteCommissionPrecision", "orderTypes", "icebergAllowed", "ocoAllowed",
        "otoAllowed", "opoAllowed", "quoteOrderQtyMarketAllowed", "allowTrailingStop", "cancelReplaceAllowed",
        "amendAllowed", "pegInstructionsAllowed", "isSpotTradingAllowed", "isMarginTradingAllowed", "filters",
        "permissions", "permissionSets", "defaultSelfTradePreventionMode", "allowedSelfTradePreventionModes"]
    assert (ethbtc["symbol"], ethbtc["status"], ethbtc["baseAsset"], ethbtc["quoteAsset"]) == (
        "ETHBTC", "TRADING", "ETH", "BTC")
    filters = {f["filterType"]: f for f in ethbtc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.00001000"  # the simulated market's tick
    assert filters["LOT_SIZE"]["stepSize"] == "0.00000001"  # and its amount step
    assert (ethbtc["permissions"], ethbtc["permissionSets"]) == ([], [["SPOT", "MARGIN"]])
    hidden = exchange_info(parse_exchange_info_query({"showPermissionSets": "false"}, LISTED), LISTED, 1, 1)
    assert hidden["symbols"][0]["permissionSets"] == []


# -- Bitstamp trading-pairs-info, pure -----------------------------------------------------------------------------


def test_bitstamp_pair_row_has_the_documented_fields_in_order():
    assert bitstamp_pair("ethbtc") == {
        "name": "ETH/BTC", "url_symbol": "ethbtc", "base_decimals": 8, "counter_decimals": 8,
        "instant_order_counter_decimals": 8, "minimum_order": "0.00100000 BTC", "trading": "Enabled",
        "instant_and_market_orders": "Enabled", "description": "Ether / Bitcoin"}
    assert list(bitstamp_pair("xrpeur")) == ["name", "url_symbol", "base_decimals", "counter_decimals",
                                             "instant_order_counter_decimals", "minimum_order", "trading",
                                             "instant_and_market_orders", "description"]
    assert bitstamp_pair("nknusdt")["description"] == "NKN / Tether"
    assert bitstamp_pair("zzzeur")["description"] == "ZZZ / Euro"  # an asset without a name keeps its code


# -- over the wire: Binance ----------------------------------------------------------------------------------------


def test_binance_lists_exactly_its_symbols_all_trading(listed):
    before = time.time() * 1000
    response = exchange_info_get(listed)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    body = response.json()
    assert [(s["symbol"], s["status"], s["baseAsset"], s["quoteAsset"]) for s in body["symbols"]] == [
        ("ETHBTC", "TRADING", "ETH", "BTC"), ("BTCUSDT", "TRADING", "BTC", "USDT"),
        ("BNBBTC", "TRADING", "BNB", "BTC")]  # not XRPEUR: Bitstamp's only
    assert body["timezone"] == "UTC" and before <= body["serverTime"] <= time.time() * 1000
    assert body["rateLimits"][0]["limit"] == WEIGHT_LIMIT  # the budget the simulator enforces


def test_binance_symbols_url_encoded_or_not_and_one_symbol(listed):
    encoded = quote('["BNBBTC","ETHBTC"]')
    assert encoded == "%5B%22BNBBTC%22%2C%22ETHBTC%22%5D"
    for query in (f"symbols={encoded}", 'symbols=["BNBBTC","ETHBTC"]'):
        response = exchange_info_get(listed, query)
        assert response.status_code == 200, response.text
        assert [s["symbol"] for s in response.json()["symbols"]] == ["BNBBTC", "ETHBTC"]
    assert [s["symbol"] for s in exchange_info_get(listed, "symbol=BTCUSDT").json()["symbols"]] == ["BTCUSDT"]


@pytest.mark.parametrize("query", ["symbol=XRPEUR", "symbol=NOSUCH", "symbols=" + quote('["ETHBTC","XRPEUR"]')])
def test_binance_a_symbol_it_does_not_list_is_an_invalid_symbol(listed, query):
    response = exchange_info_get(listed, query)
    assert (response.status_code, response.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert used_weight(response) >= 20  # a refused request is charged too


def test_binance_exchange_info_weighs_20_on_the_depth_budget(listed):
    url = f"{listed.urls['binance_rest']}/api/v3/depth"
    not_near_a_minute_boundary()
    first = exchange_info_get(listed)
    depth = requests.get(url, params={"symbol": "ETHBTC", "limit": "100"}, timeout=5)
    refused = exchange_info_get(listed, "symbolStatus=OPEN")
    second = exchange_info_get(listed, "symbol=ETHBTC")
    assert [r.status_code for r in (first, depth, refused, second)] == [200, 200, 400, 200]
    assert refused.json() == {"code": -1122, "msg": "Invalid symbolStatus."}
    base = used_weight(first)
    assert [used_weight(r) - base for r in (depth, refused, second)] == [5, 25, 45]


def test_binance_exchange_info_over_the_budget_is_a_429(make_sim):
    process = make_sim("--binance-weight-limit", "50", "--rate", "5")
    not_near_a_minute_boundary()
    responses = [exchange_info_get(process) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [used_weight(r) for r in responses] == [20, 40, 40]  # the refused one is not charged
    refused = responses[2]
    assert refused.json()["code"] == -1003 and "50 request weight per 1 MINUTE" in refused.json()["msg"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    depth = requests.get(f"{process.urls['binance_rest']}/api/v3/depth", params={"symbol": "ETHBTC"}, timeout=5)
    assert (depth.status_code, used_weight(depth)) == (200, 45)  # the same budget: 5 more still fit
    assert process.control.stats()["binance"]["rest_rate_limited"] == 1


# -- over the wire: Bitstamp ---------------------------------------------------------------------------------------


def test_bitstamp_lists_exactly_its_pairs_all_enabled(listed):
    for path in ("/api/v2/trading-pairs-info/", "/api/v2/trading-pairs-info"):
        response = requests.get(f"{listed.urls['bitstamp_rest']}{path}", timeout=5)
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
        rows = response.json()
        assert [(r["name"], r["url_symbol"], r["trading"]) for r in rows] == [
            ("ETH/BTC", "ethbtc", "Enabled"), ("BTC/USDT", "btcusdt", "Enabled"),
            ("XRP/EUR", "xrpeur", "Enabled")]  # not BNB/BTC: Binance's only
    assert response.text.startswith('[{"name": "ETH/BTC", "url_symbol": "ethbtc", ')  # spaced, as its REST is
    assert rows[2] == bitstamp_pair("xrpeur")


# -- a symbol on one venue only ------------------------------------------------------------------------------------


def test_a_bitstamp_only_symbol_is_unknown_to_binance_as_any_other(listed):
    rest = listed.urls["binance_rest"]
    for symbol in (BITSTAMP_ONLY, "NOSUCH"):
        depth = requests.get(f"{rest}/api/v3/depth", params={"symbol": symbol}, timeout=5)
        assert (depth.status_code, depth.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    silent = connect(f"{listed.urls['binance_ws']}/ws/{BITSTAMP_ONLY.lower()}@depth@100ms")  # accepted ...
    served = connect(f"{listed.urls['bitstamp_ws']}/")
    channel = f"diff_order_book_{BITSTAMP_ONLY.lower()}"
    served.send(json.dumps({"event": "bts:subscribe", "data": {"channel": channel}}))
    assert recv_json(served)["event"] == "bts:subscription_succeeded"
    listed.control.resume()
    try:
        assert recv_until(served, lambda m: m.get("channel") == channel)["event"] == "data"  # Bitstamp serves it
        assert quiet_for(silent, 0.3)  # ... and silent on Binance
    finally:
        listed.control.pause()
        silent.close()
        served.close()


def test_a_binance_only_symbol_is_unknown_to_bitstamp_as_any_other(listed):
    rest = listed.urls["bitstamp_rest"]
    for pair in (BINANCE_ONLY.lower(), "nosuch"):
        book = requests.get(f"{rest}/api/v2/order_book/{pair}/", timeout=5)
        assert (book.status_code, book.json()) == (404, {"status": "error", "reason": "Not found."})
    assert requests.get(f"{listed.urls['binance_rest']}/api/v3/depth", params={"symbol": BINANCE_ONLY},
                        timeout=5).status_code == 200
    silent = connect(f"{listed.urls['bitstamp_ws']}/")
    channel = f"diff_order_book_{BINANCE_ONLY.lower()}"
    silent.send(json.dumps({"event": "bts:subscribe", "data": {"channel": channel}}))
    assert recv_json(silent) == {"event": "bts:subscription_succeeded", "channel": channel, "data": {}}
    served = connect(f"{listed.urls['binance_ws']}/ws/{BINANCE_ONLY.lower()}@depth@100ms")
    listed.control.resume()
    try:
        assert recv_json(served)["s"] == BINANCE_ONLY
        assert quiet_for(silent, 0.3)
    finally:
        listed.control.pause()
        silent.close()
        served.close()


def test_stats_and_truth_show_which_venue_lists_what(listed):
    stats = listed.control.stats()
    assert stats["symbols"] == [*BOTH, BINANCE_ONLY, BITSTAMP_ONLY]
    assert stats["listed"] == {"binance": [*BOTH, BINANCE_ONLY], "bitstamp": [*BOTH, BITSTAMP_ONLY]}
    assert list(stats["binance"]["markets"]) == [*BOTH, BINANCE_ONLY]
    assert list(stats["bitstamp"]["markets"]) == [*BOTH, BITSTAMP_ONLY]
    assert stats["bitstamp"]["markets"][BITSTAMP_ONLY]["pair"] == "xrpeur"
    truth = listed.control.truth(depth=3, symbol=BITSTAMP_ONLY)
    assert truth["symbol"] == BITSTAMP_ONLY and truth["binance"] is None
    assert len(truth["bitstamp"]["bids"]) == 3
    assert {level["exchange"] for level in truth["merged"]["bids"] + truth["merged"]["asks"]} == {"bitstamp"}
    assert truth["merged"]["bids"][0]["price"] == truth["bitstamp"]["bids"][0][0]
    truth = listed.control.truth(depth=3, symbol=BINANCE_ONLY.lower())  # any case, as for the others
    assert truth["symbol"] == BINANCE_ONLY and truth["bitstamp"] is None and truth["binance"]["last_update_id"] > 0


def test_faults_on_a_one_venue_symbol_only_where_it_is_served(listed):
    with pytest.raises(SimulatorError, match="binance does not list XRPEUR: it is served on bitstamp only"):
        listed.control.gap(symbol=BITSTAMP_ONLY)
    with pytest.raises(SimulatorError, match="cross needs both venues: BNBBTC is served on binance only"):
        listed.control.cross(symbol=BINANCE_ONLY)
    lost = listed.control.lose_change("bitstamp", "ask", 0, symbol=BITSTAMP_ONLY)
    assert lost["side"] == "ask" and lost["symbol"] == BITSTAMP_ONLY
    assert listed.control.truth(1, symbol=BITSTAMP_ONLY)["bitstamp"]["asks"][0] == [lost["price"], lost["amount"]]
    assert listed.control.gap(events=2, symbol=BINANCE_ONLY)["symbol"] == BINANCE_ONLY
