"""The price-for-size walk against a brute-force reference: every level of every venue in step, sorted, taken in
order; exact, with and without fees, thin books, a venue out of step, amounts that end inside a level."""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.book import PriceLevel, VenueBook
from orderbook.consolidated import ConsolidatedBook
from orderbook.prices import SCALE, from_float, parse_decimal
from orderbook.quote import COST_SCALE, MAX_FEE, Quote, Side, VenueFill, walk

FAST = settings(max_examples=300, deadline=None)
VENUES = ("binance", "bitstamp")


def reference(books: dict[str, VenueBook], side: Side, amount: int, fees: dict[str, int]) -> Quote:
    """Every level of every book in a list, sorted by net price (then larger amount, then exchange), taken in
    order with Fractions."""
    rows = []
    for exchange, book in books.items():
        fee = Fraction(fees.get(exchange, 0), SCALE)
        factor = 1 + fee if side is Side.BUY else 1 - fee
        for price, size in (book.asks() if side is Side.BUY else book.bids()):
            net = Fraction(price, SCALE) * factor
            rows.append((net if side is Side.BUY else -net, -size, exchange, price, size, factor))
    rows.sort()
    remaining = Fraction(amount, SCALE)
    taken_by: dict[str, Fraction] = {}
    cost_by: dict[str, Fraction] = {}
    worst = None
    for _, _, exchange, price, size, factor in rows:
        if remaining <= 0:
            break
        taken = min(Fraction(size, SCALE), remaining)
        taken_by[exchange] = taken_by.get(exchange, Fraction(0)) + taken
        cost_by[exchange] = cost_by.get(exchange, Fraction(0)) + taken * Fraction(price, SCALE) * factor
        worst = price
        remaining -= taken
    fills = sorted((VenueFill(exchange, int(taken * SCALE), int(cost_by[exchange] * COST_SCALE))
                    for exchange, taken in taken_by.items()), key=lambda fill: (-fill.amount, fill.exchange))
    for fill in fills:  # the reference's values are whole numbers at these scales: nothing was rounded
        assert Fraction(fill.amount, SCALE) == taken_by[fill.exchange]
        assert Fraction(fill.cost, COST_SCALE) == cost_by[fill.exchange]
    return Quote(amount, amount - int(remaining * SCALE), sum(fill.cost for fill in fills), worst, tuple(fills))


def book(bids: list[PriceLevel], asks: list[PriceLevel]) -> VenueBook:
    venue_book = VenueBook()
    venue_book.load(bids, asks)
    return venue_book


def sides(books: dict[str, VenueBook], side: Side) -> dict[str, Iterator[PriceLevel]]:
    return {name: b.iter_asks() if side is Side.BUY else b.iter_bids() for name, b in books.items()}


def d(text: str) -> int:
    return parse_decimal(text)


# -- examples ------------------------------------------------------------------------------------------------


def test_a_buy_takes_the_cheapest_asks_across_venues_and_ends_inside_a_level() -> None:
    books = {"binance": book([], [(d("10"), d("1")), (d("12"), d("5"))]),
             "bitstamp": book([], [(d("11"), d("2")), (d("13"), d("5"))])}
    quote = walk(sides(books, Side.BUY), Side.BUY, d("3.5"))
    assert quote.filled == d("3.5")
    assert quote.cost == (10 * 1 + 11 * 2 + 12 * Fraction(1, 2)) * COST_SCALE  # 38
    assert quote.average_price == 38 / 3.5
    assert quote.worst_price == d("12")
    assert quote.fills == (VenueFill("bitstamp", d("2"), 22 * COST_SCALE),
                           VenueFill("binance", d("1.5"), 16 * COST_SCALE))


def test_a_sell_takes_the_highest_bids_first() -> None:
    books = {"binance": book([(d("10"), d("1")), (d("8"), d("5"))], []),
             "bitstamp": book([(d("9"), d("1"))], [])}
    quote = walk(sides(books, Side.SELL), Side.SELL, d("2.5"))
    assert (quote.filled, quote.cost, quote.worst_price) == (d("2.5"), (10 + 9 + 4) * COST_SCALE, d("8"))
    assert [fill.exchange for fill in quote.fills] == ["binance", "bitstamp"]


def test_fees_reroute_to_the_cheaper_venue_net_of_them() -> None:
    # Gross, binance is cheaper at 100 than bitstamp at 100.2; with 0.4% at binance and 0.1% at bitstamp it is not.
    books = {"binance": book([], [(d("100"), d("1"))]), "bitstamp": book([], [(d("100.2"), d("1"))])}
    fees = {"binance": d("0.004"), "bitstamp": d("0.001")}
    gross = walk(sides(books, Side.BUY), Side.BUY, d("1"))
    net = walk(sides(books, Side.BUY), Side.BUY, d("1"), fees)
    assert [fill.exchange for fill in gross.fills] == ["binance"]
    assert [fill.exchange for fill in net.fills] == ["bitstamp"]
    assert net.cost == Fraction("100.2") * Fraction("1.001") * COST_SCALE
    assert net.worst_price == d("100.2")  # as the venue quotes it, not net


def test_a_thin_book_fills_what_it_has() -> None:
    books = {"binance": book([], [(d("1"), d("0.5"))])}
    quote = walk(sides(books, Side.BUY), Side.BUY, d("2"))
    assert (quote.amount, quote.filled, quote.worst_price) == (d("2"), d("0.5"), d("1"))
    assert quote.average_price == 1.0


def test_an_empty_side_fills_nothing() -> None:
    quote = walk({"binance": iter([])}, Side.SELL, d("1"))
    assert (quote.filled, quote.cost, quote.worst_price, quote.fills) == (0, 0, None, ())
    assert math.isnan(quote.average_price)


def test_an_amount_below_the_last_digit_fills_nothing() -> None:
    books = {"binance": book([], [(d("1"), d("1"))])}
    assert walk(sides(books, Side.BUY), Side.BUY, from_float(1e-13)).fills == ()


def test_the_walk_reads_only_the_levels_it_takes() -> None:
    read = []

    def levels(exchange: str, count: int):
        for index in range(count):
            read.append(exchange)
            yield d(str(100 + index)), d("1")

    walk({"binance": levels("binance", 1000), "bitstamp": levels("bitstamp", 1000)}, Side.BUY, d("10"))
    assert len(read) <= 10 + 2  # the ten taken, and the next of each venue the merge looked at


def test_a_venue_out_of_step_takes_no_part() -> None:
    consolidated = ConsolidatedBook(VENUES, 10)
    with consolidated.lock:
        consolidated.attach("binance", book([], [(d("2"), d("1"))]))
        consolidated.attach("bitstamp", book([], [(d("1"), d("1"))]))
        consolidated.set_behind("bitstamp", True)
    quote = consolidated.quote(Side.BUY, d("1"))
    assert quote is not None and [fill.exchange for fill in quote.fills] == ["binance"]
    with consolidated.lock:
        consolidated.detach("binance")
    assert consolidated.quote(Side.BUY, d("1")) is None  # no venue in step: no quote at all


def test_from_float_is_the_nearest_scaled_integer() -> None:
    assert from_float(25.0) == 25 * SCALE
    assert from_float(0.1) == SCALE // 10
    assert from_float(1e-13) == 0


# -- properties ----------------------------------------------------------------------------------------------

prices = st.integers(1, 2_000).map(lambda ticks: ticks * SCALE // 1000)  # few distinct prices: many ties
sizes = st.integers(1, 5_000).map(lambda lots: lots * SCALE // 1000)
side_levels = st.dictionaries(prices, sizes, max_size=30)
fee_values = st.integers(0, MAX_FEE - 1) | st.sampled_from([0, d("0.001"), d("0.004")])


@st.composite
def markets(draw: st.DrawFn) -> tuple[dict[str, VenueBook], dict[str, int], set[str]]:
    books = {}
    for exchange in VENUES:
        bids, asks = draw(side_levels), draw(side_levels)
        books[exchange] = book(list(bids.items()), list(asks.items()))  # crossed or not: the walk reads one side
    fees = {exchange: draw(fee_values) for exchange in VENUES}
    in_step = draw(st.sets(st.sampled_from(VENUES)))
    return books, fees, in_step


@FAST
@given(markets(), st.sampled_from(list(Side)), st.integers(1, 200_000).map(lambda lots: lots * SCALE // 10_000 + 7),
       st.booleans())
def test_the_walk_equals_the_brute_force_reference(market, side, amount, net_of_fees) -> None:
    books, fees, in_step = market
    consolidated = ConsolidatedBook(VENUES, 10)
    with consolidated.lock:
        for exchange in in_step:
            consolidated.attach(exchange, books[exchange])
    used_fees = fees if net_of_fees else {}
    quote = consolidated.quote(side, amount, used_fees)
    if not in_step:
        assert quote is None
        return
    expected = reference({exchange: books[exchange] for exchange in in_step}, side, amount, used_fees)
    assert quote == expected
    assert quote.filled <= amount
    if quote.filled < amount:  # the books were too thin: everything on the side was taken
        assert quote.filled == sum(size for exchange in in_step
                                   for _, size in (books[exchange].asks() if side is Side.BUY else
                                                   books[exchange].bids()))
    assert math.isnan(quote.average_price) == (quote.filled == 0)
    if quote.filled:
        assert quote.average_price == float(Fraction(quote.cost, COST_SCALE) / Fraction(quote.filled, SCALE))


@FAST
@given(markets(), st.sampled_from(list(Side)), st.integers(1, 100_000).map(lambda lots: lots * SCALE // 1000))
def test_without_fees_the_net_route_is_the_gross_route(market, side, amount) -> None:
    books, _, _ = market
    zero = walk(sides(books, side), side, amount, dict.fromkeys(VENUES, 0))
    assert zero == walk(sides(books, side), side, amount)


@pytest.mark.parametrize("side", list(Side))
def test_fills_are_ordered_largest_first_then_by_exchange(side: Side) -> None:
    books = {"bitstamp": book([(d("1"), d("1"))], [(d("1"), d("1"))]),
             "binance": book([(d("1"), d("1"))], [(d("1"), d("1"))])}
    quote = walk(sides(books, side), side, d("2"))
    assert [fill.exchange for fill in quote.fills] == ["binance", "bitstamp"]
