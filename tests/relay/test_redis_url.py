"""Redis URLs: checked at start, and never shown with their password."""

from __future__ import annotations

import pytest

from orderbook.relay.redis_url import BadRedisUrl, check_url, redacted


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
