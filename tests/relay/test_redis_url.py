"""Redis URLs: checked at start, and never shown with their password."""

from __future__ import annotations

import pytest

from orderbook.relay.redis_url import BadRedisUrl, SentinelUrl, check_url, redacted, sentinel_url


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://localhost", "rediss://:pw@redis.example:6380/2",
                                 "redis://user:pw@10.0.0.1:6379"])
def test_redis_and_rediss_urls_are_taken(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(("url", "complaint"), [
    ("http://127.0.0.1:6379", "expected redis://"),
    ("127.0.0.1:6379", "expected redis://"),
    ("redis://", "expected redis://"),
    ("redis://h:99999", "not a Redis URL"),
    ("redis://h:0", "port 0"),
    ("redis://:s3cret@h:6379/db", "the database is a number"),
])
def test_a_bad_url_is_refused_without_its_password(url: str, complaint: str) -> None:
    with pytest.raises(BadRedisUrl, match=complaint) as refused:
        check_url(url)
    assert "s3cret" not in str(refused.value)


def test_the_password_is_redacted_and_the_rest_kept() -> None:
    assert redacted("redis://:s3cret@h:6379/1") == "redis://:***@h:6379/1"
    assert redacted("rediss://me:s3cret@h/0") == "rediss://me:***@h/0"
    assert redacted("redis://h:6379/0") == "redis://h:6379/0"


def test_a_sentinel_url_names_the_sentinels_the_master_the_database_and_the_masters_password() -> None:
    url = "redis+sentinel://:s3%40cret@127.0.0.1:26379,sentinel-2.example:26380,[::1]:26381/orderbook/2"
    assert check_url(url) == url
    assert sentinel_url(url) == SentinelUrl((("127.0.0.1", 26379), ("sentinel-2.example", 26380), ("::1", 26381)),
                                            "orderbook", 2, "s3@cret")
    assert sentinel_url("redis+sentinel://h:26379/orderbook") == SentinelUrl((("h", 26379),), "orderbook", 0, None)
    assert redacted(url) == "redis+sentinel://:***@127.0.0.1:26379,sentinel-2.example:26380,[::1]:26381/orderbook/2"


@pytest.mark.parametrize(("url", "complaint"), [
    ("redis+sentinel://:s3cret@h/orderbook", "each sentinel HOST:PORT"),
    ("redis+sentinel://:s3cret@h:26379,h2/orderbook", "each sentinel HOST:PORT"),
    ("redis+sentinel://:s3cret@h:0/orderbook", "each sentinel HOST:PORT"),
    ("redis+sentinel://:s3cret@h:26379", "the master's name"),
    ("redis+sentinel://:s3cret@h:26379/orderbook/db", "the database is a number"),
])
def test_a_bad_sentinel_url_is_refused_without_its_password(url: str, complaint: str) -> None:
    with pytest.raises(BadRedisUrl, match=complaint) as refused:
        check_url(url)
    assert "s3cret" not in str(refused.value)
