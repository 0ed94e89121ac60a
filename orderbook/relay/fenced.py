"""The leader's fenced write (:data:`~orderbook.relay.keys.PUBLISH`), packed here and sent on a connection of its own.

A book node's publisher runs before its own streams take the same summary (:meth:`ServedSymbols.publish_summary`
wakes its followers first), so what it does before its bytes leave for Redis is time those streams wait.
redis-py's generic call (a pool checkout, every argument encoded and type-checked, its observability hooks, the
script object's own dispatch) cost about 45 us of it before the first byte left, and 80 us a call in all,
measured on this project's 2-core machine; here the command is packed as RESP directly (its fixed head once per
lease token), sent with one ``sendall`` on a connection kept for the purpose, and the reply read after it, which
is when the streams run. The script is the same, called by its SHA (loaded again, once, when Redis answers that it
does not know it: a restarted Redis), and a connection that fails is dropped and made again at the next write,
so failures surface as the same ``RedisError`` s the caller already handles. A connection that failed is given
back to the pool and a new one taken at the next write, never reconnected in place: through Sentinel, only a
connection taken from the pool asks the sentinels where the master is now. The first write under a new lease token
also takes its connection from the pool, which checks it: the one kept may have been closed by a Redis that went
away while this node did not lead and wrote nothing, and a write on it would fail although Redis answers again.

One write at a time: the publisher and the heartbeat share the connection, and each waits for the other's reply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
from gevent.lock import Semaphore
from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as NoAnswer

from orderbook.relay.keys import PUBLISH, STORED_TTL_MS, Keys
from orderbook.relay.timing import CATALOG_TTL


def bulk(value: bytes | str | int) -> bytes:
    """``value`` as a RESP bulk string (as redis-py encodes it: ``str`` as UTF-8, ``int`` in decimal)."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


class FencedPublish:
    """``publish(token, replace, pairs)``: the fenced write of :data:`PUBLISH` with these arguments."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._sha = hashlib.sha1(PUBLISH.encode()).hexdigest()
        self._keys = (keys.lease, keys.latest, keys.catalog)
        self._tail = bulk(keys.channel) + bulk(STORED_TTL_MS) + bulk(int(CATALOG_TTL * 1000))
        self._token = ""
        self._head = b""
        self._connection: Any = None
        self._connected_for = ""
        """The lease token of the last write on :attr:`_connection`."""
        self._lock = Semaphore()

    def __call__(self, token: str, replace: bool, pairs: Sequence[bytes | str]) -> bool:
        """Whether Redis wrote ``pairs`` (False: the lease is not ``token``'s, and nothing was written). Raises
        ``RedisError`` when Redis fails or does not answer within the client's timeout."""
        command = self.command(token, replace, pairs)
        with self._lock:
            if token != self._connected_for:
                self._give_back()  # checked by the pool at the next checkout: see the module's docstring
                self._connected_for = token
            try:
                return bool(self._call(command))
            except NoScriptError:  # a Redis that restarted: the SHA is the script's own, the same once loaded
                self._client.script_load(PUBLISH)
                return bool(self._call(command))

    def command(self, token: str, replace: bool, pairs: Sequence[bytes | str]) -> bytes:
        """``EVALSHA <PUBLISH's SHA> 3 <lease> <latest> <catalog> <token> <channel> <stored ms> <catalog ms>
        <replace> <pairs>...`` as RESP, the bytes redis-py would send for the same call."""
        if token != self._token:
            self._token = token
            head: tuple[bytes | str | int, ...] = ("EVALSHA", self._sha, len(self._keys), *self._keys, token)
            self._head = b"".join(map(bulk, head)) + self._tail
        return b"".join((b"*%d\r\n" % (11 + len(pairs)), self._head, b"$1\r\n1\r\n" if replace else b"$1\r\n0\r\n",
                         *map(bulk, pairs)))

    def _call(self, command: bytes) -> Any:
        connection = self._connection
        if connection is None:
            connection = self._connection = self._client.connection_pool.get_connection()
        try:
            connection.send_packed_command((command,), check_health=False)
            # Said explicitly: a Sentinel-managed connection would otherwise keep a connection whose reply is still
            # to come, and hand that reply to the next write.
            return connection.read_response(disconnect_on_error=True)
        except (LostConnection, NoAnswer):
            # Given back, and the next write takes one from the pool, which connects afresh: through Sentinel, to
            # the master named then (a connection that reconnects by itself goes back to the address it had).
            self._give_back()
            raise

    def _give_back(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client.connection_pool.release(connection)
