"""pass_turn: the sockets that are ready go first, every time, then what they woke, and the caller is never left
out."""

from __future__ import annotations

import gevent
import gevent.socket
from gevent import Timeout
from gevent.event import Event

from orderbook.hub_turn import pass_turn


def _after_one_pause(pause, woken: int = 0) -> tuple[bool, bool]:
    """A reader waits on its socket, and a stream on what the reader publishes; the reader's bytes arrive; ``woken``
    other greenlets are ready; the caller pauses once: had the reader run, and had the stream it woke sent, when the
    caller went on?"""
    ours, theirs = gevent.socket.socketpair()
    published = Event()
    received: list[bytes] = []
    sent: list[bool] = []

    def reader() -> None:
        received.append(ours.recv(16))
        published.set()

    def stream() -> None:
        published.wait()
        sent.append(True)

    greenlets = [gevent.spawn(reader), gevent.spawn(stream)]
    try:
        gevent.sleep(0.01)  # both wait now
        for _ in range(woken):
            gevent.spawn(lambda: None)
        theirs.sendall(b"frame")
        pause()
        return bool(received), bool(sent)
    finally:
        gevent.joinall(greenlets, timeout=1)
        ours.close()
        theirs.close()


def _reader_ran_before_the_caller(pause, woken: int) -> bool:
    return _after_one_pause(pause, woken)[0]


def test_a_reader_whose_bytes_arrived_runs_before_the_caller_goes_on():
    for woken in (0, 5, 100):
        assert all(_reader_ran_before_the_caller(pass_turn, woken) for _ in range(20)), woken


def test_a_stream_that_a_reader_woke_runs_before_the_caller_goes_on():
    """A reader's frame arrives while the caller (an audit) works; the reader publishes, which wakes a stream: the
    stream has sent before the caller's next slice, not after it."""
    assert all(_after_one_pause(pass_turn)[1] for _ in range(20))


def test_sleep_zero_is_not_a_turn_for_the_sockets():
    """Why pass_turn exists: with ``gevent.sleep(0)`` the caller goes on before the hub polls the sockets."""
    assert not any(_reader_ran_before_the_caller(lambda: gevent.sleep(0), 0) for _ in range(20))


def test_the_caller_is_never_starved_by_sockets_that_are_always_ready():
    """Two greenlets keep each other's socket ready for ever (a reader that is never drained); the caller's turns
    still come, one each time round."""
    left, right = gevent.socket.socketpair()

    def ping_pong(sock: gevent.socket.socket) -> None:
        while True:
            sock.recv(1)
            sock.sendall(b"x")

    players = [gevent.spawn(ping_pong, left), gevent.spawn(ping_pong, right)]
    left.sendall(b"x")
    try:
        with Timeout(10):
            for _ in range(200):
                pass_turn()
    finally:
        gevent.killall(players)
        left.close()
        right.close()
