"""``bin/run-server``: the service's entry point.

:func:`orderbook.boot.boot` comes first, before any other import: gRPC's C-core log is turned off before grpc is
imported, gevent's monkey-patching runs before anything imports sockets, threads, ssl or time, and grpc's gevent
integration before any gRPC object exists (see :mod:`orderbook.boot` for why each). The serving processes
(``--serve-processes``) boot the same way and inherit GRPC_VERBOSITY from this one.
"""

from orderbook.boot import boot, settle_memory

boot()

import dataclasses  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import gevent  # noqa: E402

from orderbook.app import EXIT_FATAL, Application  # noqa: E402
from orderbook.config import Config, ConfigError, load_config, requested_log_format  # noqa: E402
from orderbook.logs import configure_logging, fatal_line  # noqa: E402
from orderbook.serving.listeners import announce  # noqa: E402
from orderbook.serving.limits import raise_fd_limit  # noqa: E402

if TYPE_CHECKING:  # imported when the demo starts one, not by every server
    from orderbook.simulator.process import SimulatorProcess

log = logging.getLogger("orderbook.server")


def _with_demo_exchanges(config: Config) -> tuple[Config, "SimulatorProcess"]:
    """Start the built-in simulator and point the config at it."""
    from orderbook.simulator.process import SimulatorProcess

    # Its log lines share the server's stderr: the same level, and the same format (all JSON with --log-format json).
    simulator = SimulatorProcess("--symbol", ",".join(config.symbols), "--log-level", config.log_level,
                                 "--log-format", config.log_format).start()
    urls = simulator.urls
    log.info("demo: exchange simulator running, control API at %s", urls["control"])
    venues = tuple(dataclasses.replace(settings, ws_url=urls[f"{settings.name}_ws"],
                                       rest_url=urls[f"{settings.name}_rest"])
                   for settings in config.venues)
    return dataclasses.replace(config, venues=venues), simulator


def _fatal(error: object, log_format: str) -> int:
    print(fatal_line("run-server", str(error), log_format), file=sys.stderr, flush=True)
    return EXIT_FATAL


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_config(argv)
    except ConfigError as error:
        return _fatal(error, requested_log_format(argv, os.environ))
    configure_logging(config.log_level, config.log_format)
    raise_fd_limit()  # serving processes (--serve-processes) inherit it
    settle_memory()
    simulator = None
    try:
        if config.demo:
            config, simulator = _with_demo_exchanges(config)
        app = Application(config)
        app.start()
        announce(config.ready_file, app, EXIT_FATAL)
    except ConfigError as error:
        if simulator is not None:
            simulator.stop()
        return _fatal(error, config.log_format)
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, app.stop)
    try:
        code = app.wait()
        if app.fatal_error is not None:
            _fatal(app.fatal_error, config.log_format)
        return code
    finally:
        if simulator is not None:
            simulator.stop()


if __name__ == "__main__":
    sys.exit(main())
