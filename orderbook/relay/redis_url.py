"""``redis://`` and ``rediss://`` URLs (``--publish``, ``--source``): checked at start, never logged with a password."""

from __future__ import annotations

from typing import cast
from urllib.parse import SplitResult, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SCHEMES = ("redis", "rediss")


class BadRedisUrl(ValueError):
    """Not a usable Redis URL; the message never repeats a password."""


def check_url(text: str) -> str:
    """``text`` if it is ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://`` for TLS)."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise BadRedisUrl(f"not a Redis URL ({error}): {redacted(text)}") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise BadRedisUrl(f"expected redis://HOST[:PORT][/DB] or rediss://..., got {redacted(text)}")
    if port == 0:
        raise BadRedisUrl(f"port 0 is not a Redis port: {redacted(text)}")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise BadRedisUrl(f"the database is a number (redis://HOST:PORT/0), got {database!r}: {redacted(text)}")
    return text


def redacted(text: str) -> str:
    """The URL with its password, if any, shown as ``***``: fit for logs and error lines."""
    try:
        parts = urlsplit(text)
        if parts.password is None:
            return text
    except ValueError:
        return "(a malformed URL)"
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return SplitResult(parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment).geturl()


def connect(url: str, timeout: float, name: str) -> redis.Redis:
    """A client for ``url`` that fails at once (no retries of its own: the caller backs off) and gives up on an
    answer after ``timeout`` seconds. ``name`` is what ``CLIENT LIST`` shows for it."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0), client_name=name, health_check_interval=0)


def getrange(client: redis.Redis, key: str, start: int, end: int) -> bytes:
    """``client.getrange(key, start, end)``: bytes from a :func:`connect` client, which never decodes answers
    (redis-py's annotation also allows the str of one that does)."""
    return cast(bytes, client.getrange(key, start, end))
