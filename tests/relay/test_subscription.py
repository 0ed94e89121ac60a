"""An edge's subscription, read as RESP off its socket: every message whole and in order, however the bytes are cut,
in RESP2 or RESP3; whatever else Redis says parsed and skipped; an error or a broken stream a RedisError."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import ConnectionError, RedisError, ResponseError

from orderbook.relay.redis_url import connect
from orderbook.relay.subscription import Subscription
from tests.support.redis_server import RedisServer

CHANNEL = "orderbook:summaries"


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def message(data: bytes, kind: bytes = b">", channel: bytes = CHANNEL.encode()) -> bytes:
    return kind + b"3\r\n" + bulk(b"message") + bulk(channel) + bulk(data)


CONFIRMED = b">3\r\n" + bulk(b"subscribe") + bulk(CHANNEL.encode()) + b":1\r\n"


class FakeSocket:
    """Hands out ``chunks`` one recv at a time, then times out (or reports the connection closed)."""

    def __init__(self, chunks: list[bytes], closed: bool = False) -> None:
        self.chunks, self.closed = list(chunks), closed
        self.timeouts: list[float | None] = []

    def settimeout(self, timeout: float | None) -> None:
        self.timeouts.append(timeout)

    def gettimeout(self) -> float | None:
        return self.timeouts[-1] if self.timeouts else None

    def recv(self, size: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.closed:
            return b""
        raise TimeoutError("timed out")


class FakeConnection:
    def __init__(self, sock: FakeSocket) -> None:
        self._sock, self.disconnected = sock, False
        self.sent: list[tuple[object, ...]] = []

    def send_command(self, *args: object) -> None:
        self.sent.append(args)

    def disconnect(self) -> None:
        self.disconnected = True


class FakePool:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.released: list[FakeConnection] = []

    def get_connection(self) -> FakeConnection:
        return self.connection

    def release(self, connection: FakeConnection) -> None:
        self.released.append(connection)


class FakeClient:
    def __init__(self, chunks: list[bytes], closed: bool = False) -> None:
        self.connection_pool = FakePool(FakeConnection(FakeSocket(chunks, closed)))


def opened(chunks: list[bytes], closed: bool = False) -> tuple[Subscription, FakeClient]:
    client = FakeClient([CONFIRMED, *chunks], closed)
    subscription = Subscription(client, CHANNEL)  # type: ignore[arg-type]  # what it uses of a client
    subscription.open(1.0)
    return subscription, client


def test_messages_come_whole_and_in_order_however_the_bytes_are_cut() -> None:
    payloads = [b"first", b"\r\n$3\r\n>3\r\n" * 50, b"", bytes(range(256)) * 300]
    stream = b"".join(message(data, kind) for data, kind in zip(payloads, [b">", b"*", b">", b"*"]))
    for cut in (1, 2, 7, 64, 1000, len(stream)):
        subscription, _ = opened([stream[i:i + cut] for i in range(0, len(stream), cut)])
        assert [subscription.next_message(None) for _ in payloads] == payloads
        assert subscription.next_message(0.1) is None


def test_whatever_else_redis_says_is_parsed_whole_and_skipped() -> None:
    other = (message(b"not ours", channel=b"other:channel") + b">2\r\n" + bulk(b"pong") + bulk(b"")
             + b"|1\r\n+key\r\n:1\r\n" + b">4\r\n" + bulk(b"pmessage") + bulk(b"p*") + bulk(CHANNEL.encode())
             + bulk(b"patterned") + b"%1\r\n+a\r\n*2\r\n,1.5\r\n#t\r\n" + b"_\r\n" + b"$-1\r\n" + b"(12345\r\n"
             + b"=7\r\ntxt:abc\r\n" + b"~1\r\n+x\r\n")
    subscription, _ = opened([other + message(b"ours")])
    assert subscription.next_message(None) == b"ours"


def test_an_error_reply_is_a_response_error_and_a_broken_stream_a_connection_error() -> None:
    subscription, _ = opened([b"-ERR something went wrong\r\n", message(b"after")])
    with pytest.raises(ResponseError, match="something went wrong"):
        subscription.next_message(None)
    assert subscription.next_message(None) == b"after"
    for broken in (b"?what\r\n", b"$abc\r\n", b"$3\r\nabcde\r\n", b"\r\n"):
        subscription, _ = opened([broken])
        with pytest.raises(ConnectionError):
            subscription.next_message(None)
    subscription, client = opened([message(b"last")[:-3]], closed=True)
    with pytest.raises(ConnectionError, match="closed"):
        subscription.next_message(None)
    subscription.close()
    assert client.connection_pool.connection.disconnected
    assert client.connection_pool.released == [client.connection_pool.connection]


def test_no_confirmation_within_the_timeout_is_a_connection_error() -> None:
    client = FakeClient([message(b"early")])
    with pytest.raises(ConnectionError, match="no subscription confirmed"):
        Subscription(client, CHANNEL).open(0.5)  # type: ignore[arg-type]
    assert client.connection_pool.connection.sent == [("SUBSCRIBE", CHANNEL.encode())]


@pytest.fixture
def subscribed(redis_server: RedisServer) -> Iterator[Subscription]:
    subscription = Subscription(connect(redis_server.url, 1.0, "subscription-test"), CHANNEL)
    subscription.open(1.0)
    yield subscription
    subscription.close()


def test_a_real_redis_delivers_what_is_published_in_order(subscribed: Subscription,
                                                          redis_client: redis.Redis) -> None:
    payloads = [b"x" * size for size in (0, 1, 100, 70_000, 1 << 20)]
    for data in payloads:
        redis_client.publish(CHANNEL, data)
        redis_client.publish("another:channel", b"not ours")
    assert [subscribed.next_message(2.0) for _ in payloads] == payloads
    assert subscribed.next_message(0.05) is None


@pytest.mark.usefixtures("starts_processes")
def test_redis_going_away_is_a_redis_error(tmp_path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    subscription = Subscription(connect(server.url, 1.0, "subscription-test"), CHANNEL)
    try:
        subscription.open(1.0)
        stopper = threading.Timer(0.2, server.stop)
        stopper.start()
        with pytest.raises(RedisError):
            subscription.next_message(None)
        stopper.join()
    finally:
        subscription.close()
        server.stop()
