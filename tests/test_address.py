"""orderbook.address: HOST:PORT checked once where it enters; the flags, the client's --addr and the serving
processes' command line all use it."""

from __future__ import annotations

import pytest

from orderbook.address import Address, BadAddress


@pytest.mark.parametrize(
    "address", ["127.0.0.1:99999", "127.0.0.1", "127.0.0.1:port", ":5002", "host name:1", "[::1:5002", "",
                "127.0.0.1:-1", "[]:5002", "host\n:1"]
)
def test_malformed_addresses_are_rejected(address: str) -> None:
    with pytest.raises(BadAddress, match="expected HOST:PORT|the port must be"):
        Address.parse(address)


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:5002", Address("127.0.0.1", 5002)), ("[::]:0", Address("::", 0)),
     ("localhost:65535", Address("localhost", 65535)), ("::1:5002", Address("::1", 5002)),
     ("[fe80::1]:80", Address("fe80::1", 80))],
)
def test_well_formed_addresses(address: str, expected: Address) -> None:
    assert Address.parse(address) == expected


def test_port_zero_is_refused_where_a_port_to_connect_to_is_needed() -> None:
    with pytest.raises(BadAddress, match="the port must be 1-65535"):
        Address.parse("127.0.0.1:0", min_port=1)


@pytest.mark.parametrize("text", ["127.0.0.1:5002", "[::1]:5002", "localhost:0"])
def test_an_address_prints_as_it_parses(text: str) -> None:
    assert str(Address.parse(text)) == text
