"""What each venue lists: Binance's ``GET /api/v3/exchangeInfo``, Bitstamp's ``GET /api/v2/trading-pairs-info/``.

A service asks each venue at start-up which symbols it lists, and leaves out, for that venue, a symbol it does not
know. The simulator lists exactly the symbols it serves on that venue, every one trading (Binance ``"TRADING"``,
Bitstamp ``"Enabled"``). Shapes follow the venues' documentation (sources in docs/protocols.md, "Listing"):

- Binance: the body of rest-api.md "Exchange information", the filters of filters.md and the rate limiters of
  enums.md; the parameters ``symbol``, ``symbols``, ``permissions``, ``showPermissionSets`` and ``symbolStatus``
  with the documented errors (``-1121`` for a symbol it does not list).
- Bitstamp: one object per pair with the fields of the OpenAPI ``TradingPairsInfoResponse``.

The numbers that describe a market (price tick, amount step, decimals) are the simulated market's, not the real
pair's: each simulated market quotes on its own tick (:mod:`orderbook.simulator.reference`: ETHBTC
:data:`~orderbook.simulator.market.TICK`, BTCUSDT 0.01), every price written with 8 decimals and every amount in
steps of :data:`~orderbook.simulator.market.LOT`.

Pure functions of their arguments (the caller passes the clock), so they are unit-tested without sockets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orderbook.prices import SCALE, format_decimal
from orderbook.simulator.market import LOT, TICK

# -- base and quote assets ---------------------------------------------------------------------------------------

ASSET_NAMES: Mapping[str, str] = {
    "BTC": "Bitcoin", "ETH": "Ether", "XRP": "XRP", "LTC": "Litecoin", "BCH": "Bitcoin Cash", "LINK": "Chainlink",
    "XLM": "Stellar Lumens", "ADA": "Cardano", "DOGE": "Dogecoin", "SOL": "Solana", "DOT": "Polkadot",
    "BNB": "BNB", "TRX": "TRON", "UNI": "Uniswap", "AAVE": "Aave", "KNC": "Kyber Network", "GALA": "Gala",
    "BAT": "Basic Attention Token", "OMG": "OMG Network", "MKR": "Maker", "ZRX": "0x", "NKN": "NKN",
    "BLZ": "Bluzelle", "LRC": "Loopring",
    "USD": "U.S. dollar", "EUR": "Euro", "GBP": "British Pound", "JPY": "Japanese Yen", "TRY": "Turkish Lira",
    "BRL": "Brazilian Real", "AUD": "Australian Dollar", "CHF": "Swiss Franc", "SGD": "Singapore Dollar",
    "USDT": "Tether", "USDC": "USD Coin", "FDUSD": "First Digital USD", "TUSD": "TrueUSD", "BUSD": "Binance USD",
    "USDP": "Pax Dollar", "PAX": "Paxos Standard", "DAI": "Dai", "GUSD": "Gemini Dollar",
}
"""Names for Bitstamp's ``description`` ("Ether / Bitcoin"); an asset not here is described by its code."""

QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "TUSD", "BUSD", "USDP", "PAX", "DAI", "GUSD", "BTC", "ETH", "BNB", "XRP",
                "TRX", "DOGE", "SOL", "DOT", "EUR", "GBP", "USD", "JPY", "TRY", "BRL", "AUD", "CHF", "SGD")
"""Assets the venues quote in (Binance's quote assets and Bitstamp's counter currencies, the common ones)."""

_KNOWN_ASSETS = frozenset(ASSET_NAMES) | frozenset(QUOTE_ASSETS)


def split_symbol(symbol: str) -> tuple[str, str]:
    """Base and quote asset of a symbol written without separator (``ETHBTC`` -> ``ETH``, ``BTC``), upper case.

    The quote is a known quote asset the symbol ends with; of several, the one that leaves a known base (and of
    those, the longest base: ``USDTUSD`` is USDT/USD, not USD/TUSD; ``BTCTUSD`` is BTC/TUSD), else the longest
    (``NKNUSDT`` is NKN/USDT). A symbol ending with no known quote asset is split before its last three characters
    (most pairs are three and three letters), keeping at least one for the base. ValueError for a symbol of fewer
    than two characters: it cannot name two assets.
    """
    symbol = symbol.upper()
    if len(symbol) < 2:
        raise ValueError(f"a symbol names a base and a quote asset: {symbol!r} is too short")
    candidates = [quote for quote in QUOTE_ASSETS if symbol.endswith(quote) and len(symbol) > len(quote)]
    known_base = [quote for quote in candidates if symbol[: -len(quote)] in _KNOWN_ASSETS]
    if known_base:
        quote = min(known_base, key=len)
    elif candidates:
        quote = max(candidates, key=len)
    else:
        quote = symbol[-min(3, len(symbol) - 1):]
    return symbol[: -len(quote)], quote


# -- Binance: GET /api/v3/exchangeInfo ---------------------------------------------------------------------------

EXCHANGE_INFO_WEIGHT = 20
"""rest-api.md "Exchange information": "Weight: 20" (10 before the 2023-08-25 doubling, CHANGELOG)."""

PERMISSIONS = ("SPOT", "MARGIN", "LEVERAGED", *(f"TRD_GRP_{n:03d}" for n in range(2, 26)))
"""enums.md "Account and Symbol Permissions"."""
DEFAULT_PERMISSIONS = frozenset(("SPOT", "MARGIN", "LEVERAGED"))
"""rest-api.md: "If ``permissions`` parameter not provided, all symbols that have either SPOT, MARGIN, or LEVERAGED
permission will be exposed"."""
SYMBOL_PERMISSION_SETS = (("SPOT", "MARGIN"),)
"""Every simulated symbol's ``permissionSets``: the documented example, ``[["SPOT","MARGIN"]]``."""
SYMBOL_STATUS_FILTERS = ("TRADING", "HALT", "BREAK")
"""rest-api.md, ``symbolStatus``: "Valid values: TRADING, HALT, BREAK"."""
SYMBOL_STATUSES = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")
"""enums.md "Symbol status"; ``CANCEL_ONLY`` since 2026-07-07 (CHANGELOG 2026-07-01)."""
SILENT_STATUSES = frozenset({"BREAK", "END_OF_DAY"})
"""Statuses in which the simulator's stream sends nothing: "Market data is not generated during BREAK"
(faqs/spot_glossary.md). HALT and CANCEL_ONLY: "Market data is still generated". END_OF_DAY has no documented
meaning: **Unverified**, taken as a break."""
PARAMETERS = ("symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus")

_SYMBOL = r"(?:[A-Z0-9\-_.]|[^\W\x00-\x7f]){1,20}"
"""The quoted range, widened to letters and digits of any script: ``symbol`` and ``symbols`` take Unicode values
since 2025-12 (CHANGELOG 2025-12-02). The error text still quotes the old range (what Binance answers now for a
malformed symbol is not documented)."""
_SYMBOL_RANGE = "^[A-Z0-9-_.]{1,20}$"
_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
"""The legal range Binance quotes for ``symbols`` in its -1100 error (client reports, e.g. ccxt/go-binance #267)."""
_SYMBOLS = re.compile(rf'\[("{_SYMBOL}"(,"{_SYMBOL}")*)\]')
"""Not the quoted range's ``{0,1}``: an empty list is refused with that same message (``symbols=[]`` got a
154-byte 400 answer in ccxt/go-binance #477: exactly the -1100 body for ``symbols``)."""


class ExchangeInfoError(Exception):
    """A request Binance refuses: HTTP 400 with ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(frozen=True, slots=True)
class ExchangeInfoQuery:
    """What an exchangeInfo request asks for: these symbols (None: all listed, filtered by permissions and
    status), whether to show the permission sets."""

    symbols: tuple[str, ...] | None
    permissions: frozenset[str]
    show_permission_sets: bool
    status: str | None


def _illegal(name: str, legal: str) -> ExchangeInfoError:
    return ExchangeInfoError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def _invalid(name: str) -> ExchangeInfoError:
    return ExchangeInfoError(-1130, f"Data sent for parameter '{name}' is not valid.")


def parse_exchange_info_query(query: Mapping[str, str], listed: Iterable[str]) -> ExchangeInfoQuery:
    """The request's parameters, checked against what the docs allow and the symbols ``listed``.

    Errors (docs/protocols.md, "Listing"): a parameter the endpoint does not read -1104; a malformed ``symbol``
    or ``symbols`` -1100; a symbol twice in ``symbols`` -1151; a symbol not listed -1121 "Invalid symbol.";
    ``permissions`` or ``symbolStatus`` combined with ``symbol``/``symbols``, or both of those, -1128; an unknown
    ``symbolStatus`` -1122; an unknown permission or a ``showPermissionSets`` not true/false -1130.
    """
    unread = [name for name in query if name not in PARAMETERS]
    if unread:
        raise ExchangeInfoError(-1104, f"Not all sent parameters were read; read '{len(query) - len(unread)}' "
                                       f"parameter(s) but was sent '{len(query)}'.")
    symbols: tuple[str, ...] | None = None
    if "symbol" in query:
        if not re.fullmatch(_SYMBOL, query["symbol"]):
            raise _illegal("symbol", _SYMBOL_RANGE)
        symbols = (query["symbol"],)
    if "symbols" in query:
        if not _SYMBOLS.fullmatch(query["symbols"]):
            raise _illegal("symbols", _SYMBOLS_RANGE)
        symbols = tuple(json.loads(query["symbols"]))
        if len(set(symbols)) != len(symbols):
            raise ExchangeInfoError(-1151, "Symbol is present multiple times in the list.")
    chosen = [name for name in ("symbol", "symbols") if name in query]
    others = [name for name in ("permissions", "symbolStatus") if name in query]
    if len(chosen) > 1 or (chosen and others):
        raise ExchangeInfoError(-1128, "Combination of optional parameters invalid.")
    permissions = DEFAULT_PERMISSIONS
    if "permissions" in query:
        permissions = _permissions(query["permissions"])
    status = query.get("symbolStatus")
    if status is not None and status not in SYMBOL_STATUS_FILTERS:
        raise ExchangeInfoError(-1122, "Invalid symbolStatus.")
    show = query.get("showPermissionSets", "true")
    if show not in ("true", "false"):
        raise _invalid("showPermissionSets")
    if symbols is not None:
        known = set(listed)
        if any(symbol not in known for symbol in symbols):
            raise ExchangeInfoError(-1121, "Invalid symbol.")
    return ExchangeInfoQuery(symbols, permissions, show == "true", status)


def _permissions(text: str) -> frozenset[str]:
    """``SPOT`` or ``["MARGIN","LEVERAGED"]`` (rest-api.md: "single or multiple values")."""
    if text.startswith("["):
        try:
            values = json.loads(text)
        except ValueError:
            raise _invalid("permissions") from None
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise _invalid("permissions")
    else:
        values = [text]
    if any(value not in PERMISSIONS for value in values):
        raise _invalid("permissions")
    return frozenset(values)


MAX_PRICE_TICKS = 10**9
"""``maxPrice`` is this many ticks (10,000,000 at 0.01, above every simulated price), never below the real ETHBTC's
922,327."""
ETHBTC_MAX_PRICE = 922_327 * SCALE


def binance_symbol(symbol: str, show_permission_sets: bool = True, tick: int = TICK,
                   status: str = "TRADING") -> dict[str, object]:
    """One entry of ``symbols``, with the fields and order of the documented example (rest-api.md).

    ``status``: the symbol's (``TRADING`` unless the control API changed it). The price filter's tick and the lot
    size's step are the simulated market's (``tick``, :data:`LOT`), and ``maxPrice`` is above its prices; the other
    limits are those of the real ETHBTC (a 2025-06 capture, see docs/protocols.md). ``permissions`` is empty since
    the move to ``permissionSets`` (CHANGELOG 2024-04-02, in effect 2024-04-25); ``showPermissionSets=false``
    leaves ``permissionSets`` empty.
    """
    base, quote = split_symbol(symbol)
    max_price = max(ETHBTC_MAX_PRICE, MAX_PRICE_TICKS * tick)
    return {
        "symbol": symbol,
        "status": status,
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                       "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "opoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "pegInstructionsAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": format_decimal(tick), "maxPrice": format_decimal(max_price),
             "tickSize": format_decimal(tick)},
            {"filterType": "LOT_SIZE", "minQty": format_decimal(LOT), "maxQty": "100000.00000000",
             "stepSize": format_decimal(LOT)},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [list(s) for s in SYMBOL_PERMISSION_SETS] if show_permission_sets else [],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def rate_limits(weight_limit: int) -> list[dict[str, object]]:
    """``rateLimits``: the request weight the simulator enforces per minute (real Binance: 6,000), and the order
    and raw-request limits it does not enforce, as the real venue reports them (enums.md; a 2025-06 capture)."""
    return [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
    ]


def exchange_info(query: ExchangeInfoQuery, listed: Iterable[str], weight_limit: int,
                  server_time: int, ticks: Mapping[str, int] | None = None,
                  statuses: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The body: the symbols asked for in the order asked (all listed ones, in listing order, when none were),
    those the ``permissions`` and ``symbolStatus`` filters keep (every simulated symbol has the permission set
    SPOT, MARGIN). ``ticks``: each symbol's tick (:data:`TICK` for one not in it: a replay's); ``statuses``: each
    symbol's status (``TRADING`` for one not in it)."""
    ticks, statuses = ticks or {}, statuses or {}
    if query.symbols is not None:
        chosen = list(query.symbols)
    else:
        permitted = any(query.permissions & set(permission_set) for permission_set in SYMBOL_PERMISSION_SETS)
        chosen = [symbol for symbol in listed if permitted
                  and query.status in (None, statuses.get(symbol, "TRADING"))]
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": rate_limits(weight_limit),
        "exchangeFilters": [],
        "symbols": [binance_symbol(symbol, query.show_permission_sets, ticks.get(symbol, TICK),
                                   statuses.get(symbol, "TRADING")) for symbol in chosen],
    }


# -- Bitstamp: GET /api/v2/trading-pairs-info/ -------------------------------------------------------------------

BITSTAMP_DECIMALS = 8
"""Base and counter decimals: the simulator writes Bitstamp amounts and prices with 8 decimals (as the real ETH/BTC
pair has: ``"base_decimals": 8, "counter_decimals": 8``)."""
MINIMUM_ORDER = SCALE // 1000
"""0.001 in the counter currency: the real ETH/BTC's ``"minimum_order": "0.001 BTC"``."""


BITSTAMP_TRADING = ("Enabled", "Disabled")
"""A market's ``trading``: "Enabled" when it trades (ccxt reads ``active`` as ``trading == 'Enabled'``)."""


def bitstamp_pair(pair: str, trading: str = "Enabled") -> dict[str, object]:
    """One row: the fields, in order, of Bitstamp's ``TradingPairsInfoResponse``."""
    base, quote = split_symbol(pair)
    return {
        "name": f"{base}/{quote}",
        "url_symbol": pair.lower(),
        "base_decimals": BITSTAMP_DECIMALS,
        "counter_decimals": BITSTAMP_DECIMALS,
        "instant_order_counter_decimals": BITSTAMP_DECIMALS,
        "minimum_order": f"{format_decimal(MINIMUM_ORDER, BITSTAMP_DECIMALS)} {quote}",
        "trading": trading,
        "instant_and_market_orders": trading,
        "description": f"{ASSET_NAMES.get(base, base)} / {ASSET_NAMES.get(quote, quote)}",
    }


def trading_pairs_info(pairs: Mapping[str, str]) -> list[dict[str, object]]:
    """``GET /api/v2/trading-pairs-info/`` (obsolete since 2026: replaced by ``/api/v2/markets/``): ``pairs`` maps
    each pair to its ``trading``."""
    return [bitstamp_pair(pair, trading) for pair, trading in pairs.items()]


# -- Bitstamp: GET /api/v2/markets/ ------------------------------------------------------------------------------


def bitstamp_market(pair: str, trading: str = "Enabled") -> dict[str, object]:
    """One spot row of ``GET /api/v2/markets/``, the fields in the order ccxt's bitstamp ``fetchMarkets`` documents
    them since it moved to this endpoint (ccxt PR #27924): ``market_symbol`` where the old rows had ``url_symbol``,
    ``base_currency``/``counter_currency``, ``minimum_order_value`` (a number, no currency), ``market_type``."""
    base, quote = split_symbol(pair)
    return {
        "name": f"{base}/{quote}",
        "market_symbol": pair.lower(),
        "base_currency": base,
        "base_decimals": BITSTAMP_DECIMALS,
        "counter_currency": quote,
        "counter_decimals": BITSTAMP_DECIMALS,
        "minimum_order_value": format_decimal(MINIMUM_ORDER, BITSTAMP_DECIMALS),
        "trading": trading,
        "instant_order_counter_decimals": BITSTAMP_DECIMALS,
        "instant_and_market_orders": trading,
        "description": f"{ASSET_NAMES.get(base, base)} / {ASSET_NAMES.get(quote, quote)}",
        "market_type": "SPOT",
    }


PERPETUAL_EXAMPLE: dict[str, object] = {
    "name": "BTC/USD-PERP", "market_symbol": "btcusd-perp", "base_currency": "BTC", "base_decimals": 5,
    "counter_currency": "USD", "counter_decimals": 0, "minimum_order_value": "10",
    "maximum_order_value": "500000.00000000", "minimum_order_amount": "0.00001000",
    "maximum_order_amount": "10.00000000", "trading": "Enabled", "instant_order_counter_decimals": 2,
    "instant_and_market_orders": "Enabled", "description": "Bitcoin / U.S. dollar Perpetual",
    "market_type": "PERPETUAL", "underlying_asset": "Kaiko BTC Benchmark Reference Rate", "payoff_type": "Linear",
    "contract_size": "1.00000000", "isin": "EZHKD4DNKHY3",
}
"""The perpetual row ccxt documents: the new endpoint lists derivatives beside spot pairs, and a client must not take
``btcusd-perp`` for a spot book."""


def markets(pairs: Mapping[str, str]) -> list[dict[str, object]]:
    """``GET /api/v2/markets/``: every spot pair (``pairs`` maps each to its ``trading``), then a perpetual."""
    return [*(bitstamp_market(pair, trading) for pair, trading in pairs.items()), PERPETUAL_EXAMPLE]
