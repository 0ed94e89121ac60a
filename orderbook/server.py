"""``bin/run-server``: the service's entry point.

gevent's monkey-patching must run before anything else imports sockets, threads, ssl or time, and grpc's
gevent integration before any gRPC object exists (RUNTIME-NOTES.md): hence the order of the first lines.

First of all, gRPC's C core is told to keep its own log quiet. It writes to stderr from C, in its own format, and
reads GRPC_VERBOSITY only as grpc is first imported: without this, a port in use is reported twice, first by a
``E0000 ... add_port.cc] Failed to add port ...`` line, then by the service's own one line (and under
``--log-format json`` the former is not JSON). Whatever the core would say, the service reports in its own words.
A GRPC_VERBOSITY set in the environment wins, to debug gRPC itself; the serving processes inherit the setting.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from gevent import monkey  # noqa: E402

monkey.patch_all()

from orderbook.serving.gevent_polling import init_grpc_gevent  # noqa: E402

init_grpc_gevent()

import dataclasses  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import gevent  # noqa: E402

from orderbook.app import EXIT_FATAL, Application  # noqa: E402
from orderbook.config import Config, ConfigError, load_config, requested_log_format  # noqa: E402
from orderbook.logs import configure_logging, fatal_line  # noqa: E402
from orderbook.serving.limits import raise_fd_limit  # noqa: E402

log = logging.getLogger("orderbook.server")


def _with_demo_exchanges(config: Config):  # type: ignore[no-untyped-def]
    """Start the built-in simulator and point the config at it."""
    from orderbook.simulator.process import SimulatorProcess

    # Its log lines share the server's stderr: the same level, and the same format (all JSON with --log-format json).
    simulator = SimulatorProcess("--symbol", config.symbol, "--log-level", config.log_level,
                                 "--log-format", config.log_format).start()
    urls = simulator.urls
    log.info("demo: exchange simulator running, control API at %s", urls["control"])
    config = dataclasses.replace(
        config,
        binance_ws_url=urls["binance_ws"],
        binance_rest_url=urls["binance_rest"],
        bitstamp_ws_url=urls["bitstamp_ws"],
        bitstamp_rest_url=urls["bitstamp_rest"],
    )
    return config, simulator


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
    simulator = None
    try:
        if config.demo:
            config, simulator = _with_demo_exchanges(config)
        app = Application(config)
        app.start()
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
