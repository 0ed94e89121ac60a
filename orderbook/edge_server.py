"""``bin/run-edge``: an edge's entry point (:mod:`orderbook.relay.edge`). Boots as the server does
(:mod:`orderbook.boot`): first, before any other import."""

from orderbook.boot import boot, settle_memory

boot()

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import gevent  # noqa: E402

from orderbook.config import EDGE_ENV_PREFIX, ConfigError, requested_log_format  # noqa: E402
from orderbook.logs import configure_logging, fatal_line  # noqa: E402
from orderbook.serving.listeners import announce  # noqa: E402
from orderbook.relay.edge import Edge, load_edge_config  # noqa: E402
from orderbook.serving.limits import raise_fd_limit  # noqa: E402

EXIT_FATAL = 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_edge_config(argv)
    except ConfigError as error:
        print(fatal_line("run-edge", str(error), requested_log_format(argv, os.environ, EDGE_ENV_PREFIX)),
              file=sys.stderr, flush=True)
        return EXIT_FATAL
    configure_logging(config.log_level, config.log_format)
    raise_fd_limit()
    settle_memory()
    edge = Edge(config)
    try:
        edge.start()
        announce(config.ready_file, edge, EXIT_FATAL)
    except ConfigError as error:
        print(fatal_line("run-edge", str(error), config.log_format), file=sys.stderr, flush=True)
        return EXIT_FATAL
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, edge.stop)
    return edge.wait()


if __name__ == "__main__":
    sys.exit(main())
