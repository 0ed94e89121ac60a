"""``bin/run-server``: the service's entry point.

:func:`orderbook.boot.boot` comes first, before any other import: gRPC's C-core log is turned off before grpc is
imported, gevent's monkey-patching runs before anything imports sockets, threads, ssl or time, and grpc's gevent
integration before any gRPC object exists (see :mod:`orderbook.boot` for why each). The serving processes
(``--serve-processes``) boot the same way and inherit GRPC_VERBOSITY from this one.
"""

from orderbook.boot import boot

boot()

import dataclasses  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402

from orderbook import process  # noqa: E402
from orderbook.app import Application  # noqa: E402
from orderbook.config import ENV_PREFIX, Config, ConfigError, load_config  # noqa: E402
from orderbook.listeners import refuse_taken_addresses  # noqa: E402

log = logging.getLogger("orderbook.server")


def _with_demo_exchanges(config: Config, beside: ExitStack) -> Config:
    """Start the built-in simulator (stopped with ``beside``) and point the config at it."""
    from orderbook.simulator.process import SimulatorError, SimulatorProcess

    # Its log lines share the server's stderr: the same level, and the same format (all JSON with --log-format json).
    simulator = SimulatorProcess("--symbol", ",".join(config.symbols), "--log-level", config.log_level,
                                 "--log-format", config.log_format)
    try:
        simulator.start()
    except SimulatorError as error:  # it has said why on stderr, if it could
        raise ConfigError(f"{config.setting('demo')}: the exchange simulator did not start: {error}") from None
    beside.callback(simulator.stop)
    urls = simulator.urls
    log.info("demo: exchange simulator running, control API at %s", urls["control"])
    venues = tuple(dataclasses.replace(settings, ws_url=urls[f"{settings.name}_ws"],
                                       rest_url=urls[f"{settings.name}_rest"])
                   for settings in config.venues)
    return dataclasses.replace(config, venues=venues)


def _start(config: Config, beside: ExitStack) -> Application:
    if config.demo:
        # Before the simulator, whose lines (its own process's) cannot be held back.
        refuse_taken_addresses(config.grpc_addr, config.metrics_addr, config.setting)
        config = _with_demo_exchanges(config, beside)
    app = Application(config)
    app.start()  # a port in use, a symbol no venue lists: refused here
    return app


def main(argv: Sequence[str] | None = None) -> int:
    return process.main("run-server", argv, load_config, ENV_PREFIX, _start)


if __name__ == "__main__":
    sys.exit(main())
