"""One serving process's life, the same for a book node (:mod:`orderbook.server`) and an edge
(:mod:`orderbook.edge_server`): its configuration, or one line saying what is wrong with it; logging and the
process-wide settings; the process object started, its ports in ``--ready-file``, stopped by SIGTERM or SIGINT; its
exit code (:mod:`orderbook.exit_codes`), and the line it ends with when it stops on a fatal error.

Imported after :func:`orderbook.boot.boot`, as everything that imports gevent or grpc.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Protocol, TypeVar

import gevent

from orderbook.boot import settle_memory
from orderbook.config import ConfigError, requested_log_format
from orderbook.exit_codes import EXIT_FATAL
from orderbook.listeners import Listening, announce
from orderbook.logs import configure_logging, fatal_line, hold_lines
from orderbook.serving.limits import raise_fd_limit


class ProcessConfig(Protocol):
    """What this module reads of a process's configuration."""

    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> str: ...

    @property
    def ready_file(self) -> str | None: ...

    def setting(self, dest: str) -> str: ...


_Config = TypeVar("_Config", bound=ProcessConfig)


def main(program: str, argv: Sequence[str] | None, load: Callable[[Sequence[str]], _Config], env_prefix: str,
         start: Callable[[_Config, ExitStack], Listening]) -> int:
    """Run one process until it stops; returns its exit code.

    ``program`` names it in the fatal line; ``load`` reads its configuration (raising
    :class:`~orderbook.config.ConfigError`) from ``argv`` and the ``env_prefix`` variables; ``start`` builds the
    process object and starts it (a ConfigError for what binding or starting finds wrong), leaving what it starts
    beside it (the server's demo simulator) to the stack, which stops it once the process has stopped, or at once
    if starting failed.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load(argv)
    except ConfigError as error:
        return _fatal(program, error, requested_log_format(argv, os.environ, env_prefix))
    configure_logging(config.log_level, config.log_format)
    raise_fd_limit()  # serving processes (--serve-processes) inherit it
    settle_memory()
    release_lines = hold_lines()  # until it has started: an error that ends the start is its one line
    with ExitStack() as beside:
        try:
            process = start(config, beside)
            announce(config.ready_file, process, EXIT_FATAL, config.setting)
        except ConfigError as error:
            release_lines(False)
            beside.close()
            return _fatal(program, error, config.log_format)
        finally:
            release_lines(True)  # written now; or, after the error above, already dropped
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, process.stop)
        code = process.wait()
        if process.fatal_error is not None:
            _fatal(program, process.fatal_error, config.log_format)
        return code


def _fatal(program: str, error: object, log_format: str) -> int:
    print(fatal_line(program, str(error), log_format), file=sys.stderr, flush=True)
    return EXIT_FATAL
