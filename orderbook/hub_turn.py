"""A turn of the hub: how a long task lets every other task of the process run before it goes on.

``gevent.sleep(0)`` is not one. It queues the caller as a callback, and the hub runs the callbacks queued (the
greenlets woken meanwhile, the caller again at its next pause) before it polls the sockets: up to 50 at a time and
for its switch interval, 5 ms. A reader whose frame waits on its socket is woken only by that poll, so a task that
pauses with ``sleep(0)`` keeps it waiting for as long as it runs. Measured at 500 symbols: a drift audit's parse and
compare, ten pauses 0.6-2 ms apart with ``sleep(0)``, kept a Binance frame unread for 9.5 ms; it made most of a
one-symbol client's p99 (11 ms, against 2 ms at one symbol).

:func:`pass_turn` waits on a timer that is due at once, at a priority below every socket's. The hub polls the
sockets without blocking (the timer is due), runs every reader and writer whose socket is ready, then the timer,
which resumes the caller: the sockets first, every time, whatever else keeps the hub busy (a timer is never left
out of its turn, so the caller never starves either), for a few microseconds when nothing else is waiting.
Then it queues the caller behind the greenlets those readers woke (``gevent.sleep(0)``): the hub runs them at the
start of its next turn, so a summary a reader published is sent by its stream before the caller goes on. Without
that second step a stream waited one more of the caller's slices: the timer resumes the caller in the same turn,
before the hub runs what was woken (an audit's slice between a probe's publish and its send, at 500 symbols).
"""

from __future__ import annotations

import gevent
from gevent import get_hub

AFTER_THE_SOCKETS = -1
"""The timer's priority: libev runs the events of a turn from the highest priority down, and sockets are at 0."""


def pass_turn() -> None:
    """Let every task whose socket is ready, and every greenlet woken, run; then go on."""
    hub = get_hub()
    hub.wait(hub.loop.timer(0.0, priority=AFTER_THE_SOCKETS))
    gevent.sleep(0)  # behind the greenlets those readers woke: their streams send before the caller goes on
