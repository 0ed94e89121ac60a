"""The start of every process: gevent's monkey-patching, then grpcio's gevent set-up. Call :func:`boot` first.

Every entry point (``bin/run-server``, a serving process, the exchange simulator, the tests' helper processes)
begins the same way, before importing anything else of this project or anything that imports ``socket``,
``threading``, ``ssl``, ``select``, ``time`` or ``grpc``::

    from orderbook.boot import boot

    boot()  # or boot(grpc=False) in a process without gRPC

    import ...  # noqa: E402  (after boot(), on purpose)

The order is the point, and each step has its reason:

1. ``GRPC_VERBOSITY`` (gRPC processes only). gRPC's C core writes its own log to stderr, in its own format, and
   reads this variable only as grpc is first imported. Left on, a port in use is reported twice, first by a
   ``E0000 ... add_port.cc] Failed to add port ...`` line, then by the service's own one line (and under
   ``--log-format json`` the former is not JSON). So it is set to ``NONE`` before grpc can be imported: whatever
   the core would say, the service reports in its own words. A GRPC_VERBOSITY already in the environment wins
   (to debug gRPC itself); child processes inherit the setting.
2. ``gevent.monkey.patch_all()``: a module that imported ``socket`` or ``threading`` before the patch keeps the
   blocking originals, which would block the whole hub. Hence first, before any other import.
3. :func:`orderbook.gevent_polling.init_grpc_gevent` (gRPC processes only): grpcio's gevent integration
   plus ready-first completion polling. It must run after the patch and before any gRPC object (channel, server)
   exists: grpcio picks its polling mode once.

This module imports nothing but :mod:`os` at import time, so importing it cannot spoil the order. :func:`boot`
is idempotent: a second call does nothing and returns what the first returned (``boot(grpc=False)`` followed by
``boot()`` adds the gRPC steps). Process-wide policies that need the logging set-up first (such as raising the
open-file limit, :func:`orderbook.serving.limits.raise_fd_limit`) stay with the entry point that wants them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orderbook.gevent_polling import ReadyFirstPolls

GRPC_VERBOSITY = "NONE"
"""gRPC core's log level unless the environment sets one (see step 1 above)."""

_patched = False
_grpc_booted = False
_polls: ReadyFirstPolls | None = None


def quiet_grpc_core() -> None:
    """Step 1 alone: gRPC core's own log off (unless the environment sets ``GRPC_VERBOSITY``). Also for a process
    that is not gevent-patched, ``bin/client``, whose one error line would otherwise follow the core's own lines
    about the same failure (a ``--tls-ca`` that is no certificate: four of them). Call it before grpc is imported."""
    os.environ.setdefault("GRPC_VERBOSITY", GRPC_VERBOSITY)


def boot(grpc: bool = True) -> ReadyFirstPolls | None:
    """Patch the process for gevent and, with ``grpc``, set grpcio up for it; see the module docstring.

    Returns the installed :class:`~orderbook.gevent_polling.ReadyFirstPolls` (its ``ready`` and
    ``parked`` counters tell whether the fast path is taken), or None without ``grpc`` or when this grpcio lacks
    the poll hook (stock gevent polling, with a warning).
    """
    global _patched, _grpc_booted, _polls
    if grpc and not _grpc_booted:
        quiet_grpc_core()  # before anything can import grpc
    if not _patched:
        from gevent import monkey

        monkey.patch_all()
        _patched = True
    if grpc and not _grpc_booted:
        from orderbook.gevent_polling import init_grpc_gevent

        _polls = init_grpc_gevent()
        _grpc_booted = True
    return _polls if _grpc_booted else None


YOUNG_COLLECTION_EVERY = 20_000
"""Container allocations between two young garbage collections (Python's default: 700)."""


def settle_memory() -> None:
    """Once everything is imported and before the books fill: keep the garbage collector's full collections rare
    and short.

    Many books and their per-frame objects made CPython's full collections walk hundreds of thousands of objects:
    at 200 symbols, 100-260 ms with the hub stopped, every 7 s or so, which is what a client's p99 saw. Two
    changes took them away (none in 260 s at 200 symbols): the objects alive now (modules, classes, the gRPC
    machinery; never garbage) are frozen out of every collection, and young collections run every 20,000
    allocations instead of 700, so that the summaries and diffs a frame makes die by reference count before a
    collection can promote them to the old generation, whose growth is what triggers a full collection.
    Cyclic garbage is still collected.
    """
    import gc

    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)
