"""``bin/run-server``: the service's entry point.

gevent's monkey-patching must run before anything else imports sockets, threads, ssl or time, and grpc's
gevent integration before any gRPC object exists (RUNTIME-NOTES.md): hence the order of the first lines.
"""

from gevent import monkey

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
from orderbook.config import Config, ConfigError, load_config  # noqa: E402
from orderbook.logs import configure_logging  # noqa: E402
from orderbook.serving.limits import raise_fd_limit  # noqa: E402

log = logging.getLogger("orderbook.server")


def _with_demo_exchanges(config: Config):  # type: ignore[no-untyped-def]
    """Start the built-in simulator and point the config at it."""
    from orderbook.simulator.process import SimulatorProcess

    simulator = SimulatorProcess("--symbol", config.symbol).start()
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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as error:
        print(f"run-server: error: {error}", file=sys.stderr)
        return EXIT_FATAL
    configure_logging(config.log_level, config.log_format)
    raise_fd_limit()  # serving processes (--serve-processes) inherit it
    simulator = None
    try:
        if config.demo:
            config, simulator = _with_demo_exchanges(config)
        app = Application(config)
        app.start()
    except ConfigError as error:
        print(f"run-server: error: {error}", file=sys.stderr)
        if simulator is not None:
            simulator.stop()
        return EXIT_FATAL
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, app.stop)
    try:
        code = app.wait()
        if app.fatal_error is not None:
            print(f"run-server: error: {app.fatal_error}", file=sys.stderr)
        return code
    finally:
        if simulator is not None:
            simulator.stop()


if __name__ == "__main__":
    sys.exit(main())
