"""Exact prices: one level per number however it is written, and nothing but plain decimals accepted."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.prices import DIGITS, SCALE, BadNumber, format_decimal, parse_decimal, to_float

FAST = settings(max_examples=200, deadline=None)
LARGEST = 10**18 * SCALE - 1  # the largest value with at most 18 integer digits


def test_scale_is_twelve_digits():
    assert (DIGITS, SCALE) == (12, 10**12)


@pytest.mark.parametrize(
    ("text", "scaled"),
    [
        ("0.05123000", 51_230_000_000),
        ("0.05123", 51_230_000_000),
        ("1", 10**12),
        ("1.", 10**12),
        ("0", 0),
        ("0.00000000", 0),
        ("000012.5", 12_500_000_000_000),
        ("58001.03000000", 58_001_030_000_000_000),
        ("0.000000000001", 1),
        ("0.1000000000000000000", 10**11),  # zeros past the 12th decimal are harmless
        ("9" * 18, (10**18 - 1) * SCALE),
    ],
)
def test_parse_decimal_values(text, scaled):
    assert parse_decimal(text) == scaled


def test_trailing_zeros_are_one_level():
    assert parse_decimal("0.05123000") == parse_decimal("0.05123") == parse_decimal("0.051230000000")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "+1",
        "-0",
        "1e5",
        "1E5",
        "NaN",
        "nan",
        "inf",
        "Infinity",
        " 1",
        "1 ",
        "1\n",
        "1_0",
        "0x1",
        ".5",
        "1.2.3",
        "1,5",
        "\u0661\u0662",  # Arabic-Indic digits: str.isdigit() says yes, the exchanges never send them
        "0.0000000000001",  # a non-zero 13th decimal cannot be held exactly
        "1.1234567890123",
        "1" * 19,  # absurdly large
        "9" * 1000,
        "0." + "0" * 500 + "1",
    ],
)
def test_parse_decimal_rejects(text):
    with pytest.raises(BadNumber):
        parse_decimal(text)


@pytest.mark.parametrize("value", [1, 0, None, 1.5, float("nan"), ["1"], b"1", Decimal("1")])
def test_parse_decimal_rejects_non_strings(value):
    with pytest.raises(BadNumber):
        parse_decimal(value)


def test_bad_number_is_a_value_error():
    # Callers that only know ValueError (the parsers catch it) still catch it.
    assert issubclass(BadNumber, ValueError)


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (51_230_000_000, 8, "0.05123000"),
        (0, 8, "0.00000000"),
        (10**12, 0, "1"),
        (10**12 + 1, 12, "1.000000000001"),
        (10**12 + 1, 8, "1.00000000"),  # below the shown places: truncated, as documented by the round trip
        (123_456_789_000_000, 2, "123.45"),
    ],
)
def test_format_decimal_values(value, places, text):
    assert format_decimal(value, places) == text


def test_format_decimal_refuses_more_places_than_held():
    with pytest.raises(ValueError):
        format_decimal(1, DIGITS + 1)


@FAST
@given(st.integers(min_value=0, max_value=LARGEST))
def test_format_then_parse_round_trip(value):
    assert parse_decimal(format_decimal(value, DIGITS)) == value


@FAST
@given(st.integers(min_value=0, max_value=LARGEST), st.integers(min_value=0, max_value=DIGITS))
def test_format_with_fewer_places_truncates(value, places):
    step = 10 ** (DIGITS - places)
    assert parse_decimal(format_decimal(value, places)) == value - value % step


decimals = st.decimals(
    min_value=0, max_value=Decimal(10**18) - 1, places=DIGITS, allow_nan=False, allow_infinity=False
).map(abs)  # no "-0"



def plain(number: Decimal) -> str:
    """A plain decimal string (never an exponent) for a hypothesis Decimal."""
    return format(number, "f")


@FAST
@given(decimals)
def test_parse_matches_decimal(number):
    assert parse_decimal(plain(number)) == int(number.scaleb(DIGITS))


@FAST
@given(decimals)
def test_to_float_is_the_nearest_double(number):
    text = plain(number)
    assert to_float(parse_decimal(text)) == float(Decimal(text))


@FAST
@given(decimals, st.integers(min_value=0, max_value=20))
def test_trailing_zeros_never_matter(number, zeros):
    text = plain(number)
    padded = text + "0" * zeros if "." in text else text + "." + "0" * zeros
    assert parse_decimal(padded) == parse_decimal(text)


@pytest.mark.parametrize("text", ["1.0000000000000", "0." + "0" * 13, "7.00000000000000000000"])
def test_all_zero_fraction_longer_than_digits(text):
    assert parse_decimal(text) == int(Decimal(text).scaleb(DIGITS))
