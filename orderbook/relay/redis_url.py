"""``redis://``, ``rediss://`` and ``redis+sentinel://`` URLs (``--publish``, ``--source``): checked at start, never
logged with a password.

``redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`` names Redis Sentinels rather than Redis:
the client asks them which server is the master named ``MASTER_NAME`` whenever it connects (redis-py's
``Sentinel``), so it follows a failover at its next connection; the password is the master's (the sentinels are
asked without one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from urllib.parse import SplitResult, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

SCHEMES = ("redis", "rediss")
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_FORM = "redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"


class BadRedisUrl(ValueError):
    """Not a usable Redis URL; the message never repeats a password."""


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    database: int
    password: str | None


def sentinel_url(text: str) -> SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL; raises :class:`BadRedisUrl`."""
    scheme, _, rest = text.partition("://")
    if scheme != SENTINEL_SCHEME:
        raise BadRedisUrl(f"expected {SENTINEL_FORM}, got {redacted(text)}")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) or None if at else None
    sentinels = []
    for host_port in hosts.split(","):
        host, colon, port = host_port.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadRedisUrl(f"expected {SENTINEL_FORM} (each sentinel HOST:PORT), got {redacted(text)}")
        sentinels.append((host.strip("[]"), int(port)))
    master, _, database = path.partition("/")
    if not master:
        raise BadRedisUrl(f"expected {SENTINEL_FORM} (the master's name after the sentinels), got {redacted(text)}")
    if database.strip("/") and not database.strip("/").isdigit():
        raise BadRedisUrl(f"the database is a number ({SENTINEL_FORM}), got {database!r}: {redacted(text)}")
    return SentinelUrl(tuple(sentinels), master, int(database.strip("/") or 0), password)


def check_url(text: str) -> str:
    """``text`` if it is ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://`` for TLS), or a
    ``redis+sentinel://`` URL."""
    if text.startswith(f"{SENTINEL_SCHEME}://"):
        sentinel_url(text)
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise BadRedisUrl(f"not a Redis URL ({error}): {redacted(text)}") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise BadRedisUrl(f"expected redis://HOST[:PORT][/DB], rediss://... or {SENTINEL_FORM}, got {redacted(text)}")
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
    answer after ``timeout`` seconds. ``name`` is what ``CLIENT LIST`` shows for it. Through Sentinel, each new
    connection goes to the master the sentinels name then."""
    if not url.startswith(f"{SENTINEL_SCHEME}://"):
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    retry=Retry(NoBackoff(), 0), client_name=name, health_check_interval=0)
    parts = sentinel_url(url)
    sentinel = Sentinel(list(parts.sentinels), sentinel_kwargs={
        "socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)})
    return sentinel.master_for(parts.master, socket_timeout=timeout, socket_connect_timeout=timeout,
                               retry=Retry(NoBackoff(), 0), client_name=name, health_check_interval=0,
                               password=parts.password, db=parts.database)


def getrange(client: redis.Redis, key: str, start: int, end: int) -> bytes:
    """``client.getrange(key, start, end)``: bytes from a :func:`connect` client, which never decodes answers
    (redis-py's annotation also allows the str of one that does)."""
    return cast(bytes, client.getrange(key, start, end))
