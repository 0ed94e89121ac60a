"""What a book node and an edge share as processes: their listeners (gRPC first, then /metrics, each failure one
line for the user, :class:`~orderbook.config.ConfigError`), the ready file once both are up, and how they stop.

A listener that cannot bind is reported under the setting its address came from, as the user wrote it
(``ORDERBOOK_GRPC_ADDR 127.0.0.1:5002: address already in use``): the configuration knows the name
(:attr:`orderbook.config.Config.names`), and a user who set a variable looks for the variable, not the flag.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable

import gevent
import gevent.event
from prometheus_client import CollectorRegistry

from orderbook.address import Address
from orderbook.config import ConfigError, setting_name
from orderbook.exit_codes import EXIT_TASKS_FAILING
from orderbook.metrics_http import MetricsHttpServer
from orderbook.ready_file import write_ready_file
from orderbook.serving.grpc_server import GrpcServer, ListenError, ServerStartError
from orderbook.serving.fanout import ServingProcesses
from orderbook.supervision import Supervisor

log = logging.getLogger(__name__)

Setting = Callable[[str], str]
"""A setting's ``dest`` -> its name as the user gave it (:meth:`orderbook.config.Config.setting`)."""


def flag(dest: str) -> str:
    """The flag of ``dest``: the name when nothing says how the setting was given."""
    return setting_name({}, dest)


def start_listeners(grpc: GrpcServer | ServingProcesses, metrics_addr: Address | None,
                    registry: CollectorRegistry, setting: Setting = flag) -> MetricsHttpServer | None:
    """Bind gRPC, then /metrics (if an address is given; gRPC is stopped again if /metrics cannot bind). An
    address that cannot be bound is a :class:`ConfigError` naming ``setting("grpc_addr")`` or
    ``setting("metrics_addr")``."""
    try:
        grpc.start()
    except ListenError as error:
        raise ConfigError(f"{setting('grpc_addr')} {error.address}: {error.reason}") from None
    except ServerStartError as error:
        raise ConfigError(str(error)) from None
    if metrics_addr is None:
        return None
    metrics_http = MetricsHttpServer(registry, metrics_addr.host, metrics_addr.port)
    try:
        metrics_http.start()
    except OSError as error:
        grpc.stop(0)
        reason = "address already in use" if error.errno == errno.EADDRINUSE else error.strerror or str(error)
        raise ConfigError(f"{setting('metrics_addr')} {metrics_addr}: {reason}") from None
    log.info("metrics on http://%s:%d/metrics", metrics_addr.host, metrics_http.port)
    return metrics_http


def refuse_taken_addresses(grpc_addr: Address, metrics_addr: Address | None, setting: Setting = flag) -> None:
    """:class:`ConfigError` for a listen address something already listens on, found with a plain socket before
    anything of gRPC exists.

    For ``--demo``, whose simulator must be started before gRPC's threads run (a process that forks then may abort
    in the child: seen here once in fifteen starts), yet whose start must end on a port in use before the
    simulator says a word. Only a look, not a reservation (port 0 is not looked at): the real bind still reports
    a port taken meanwhile."""
    for dest, address in (("grpc_addr", grpc_addr), ("metrics_addr", metrics_addr)):
        if address is None or address.port == 0:
            continue
        try:
            infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror:
            continue  # the real bind says so
        for family, kind, proto, _, sockaddr in infos:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC and /metrics bind
                try:
                    probe.bind(sockaddr)
                except OSError as error:
                    if error.errno == errno.EADDRINUSE:
                        raise ConfigError(f"{setting(dest)} {address}: address already in use") from None


class Listening:
    """A process serving gRPC (and /metrics) until :meth:`stop`: its supervised greenlets (:attr:`tasks`), its
    listeners, an exit code. A subclass sets :attr:`grpc` and calls :meth:`start_listening` from its ``start``."""

    grpc: GrpcServer | ServingProcesses

    def __init__(self) -> None:
        self.metrics_port: int | None = None
        self._metrics_http: MetricsHttpServer | None = None
        self.tasks = Supervisor(on_give_up=lambda reason: gevent.spawn(self.stop, EXIT_TASKS_FAILING))
        self._done: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self.fatal_error: Exception | None = None
        """Why the process stopped, when its user must put it right (the line it ends with); None otherwise."""

    def start_listening(self, metrics_addr: Address | None, registry: CollectorRegistry,
                        setting: Setting = flag) -> None:
        self._metrics_http = start_listeners(self.grpc, metrics_addr, registry, setting)
        self.metrics_port = None if self._metrics_http is None else self._metrics_http.port

    def wait(self) -> int:
        """Block until :meth:`stop`; returns the exit code."""
        code = self._done.get()
        assert code is not None  # a blocking get() returns the value (the stub says it may be None) or raises
        return int(code)

    def stop(self, exit_code: int = 0, grace: float = 1.0) -> None:
        if self._done.ready():
            return
        log.info("shutting down")
        self._before_stop()
        self.tasks.kill(timeout=grace)
        self.grpc.stop(grace)
        if self._metrics_http is not None:
            self._metrics_http.stop(min(grace, 1.0))
        self._done.set(exit_code)

    def _before_stop(self) -> None:
        """What a subclass does first when stopping."""


def announce(ready_file: str | None, process: Listening, exit_code: int, setting: Setting = flag) -> None:
    """``--ready-file``: write the bound ports; if that fails, stop ``process`` and say why (ConfigError, naming
    ``setting("ready_file")``)."""
    if ready_file is None:
        return
    try:
        write_ready_file(ready_file, process.grpc.port, process.metrics_port)
    except OSError as error:
        process.stop(exit_code, grace=0)
        raise ConfigError(f"{setting('ready_file')} {ready_file}: {error.strerror or error}") from None
