"""A ``concurrent.futures.Executor`` that runs every call in its own greenlet.

grpcio's sync server holds one executor worker per streaming RPC for the RPC's whole life, so a fixed-size
thread pool silently starves every stream beyond its size. One greenlet per call removes that cap; the server
bounds the total with ``maximum_concurrent_rpcs`` instead, which fails the excess call with RESOURCE_EXHAUSTED
rather than leaving it silent. Requires a gevent-patched process when results are awaited from other greenlets
(``Future`` waits on ``threading`` primitives).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from gevent.pool import Group

T = TypeVar("T")


class GreenletExecutor(Executor):
    """Unbounded by design: the caller (the gRPC server) limits concurrency."""

    def __init__(self) -> None:
        self._group = Group()
        self._not_started: set[Future[Any]] = set()
        self._shut_down = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._shut_down:
            raise RuntimeError("cannot schedule new calls after shutdown")
        future: Future[T] = Future()
        self._not_started.add(future)
        self._group.spawn(self._run, future, fn, args, kwargs)
        return future

    def _run(self, future: Future[T], fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._not_started.discard(future)
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - as in ThreadPoolExecutor, the Future carries it to the waiter
            future.set_exception(exc)
        else:
            future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shut_down = True
        if cancel_futures:
            for future in list(self._not_started):
                future.cancel()
        if wait:
            self._group.join()

    @property
    def running(self) -> int:
        """Calls started and not yet finished (plus those spawned but not yet started)."""
        return len(self._group)
