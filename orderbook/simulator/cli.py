"""``bin/exchange-sim``: run the simulator as its own process and print its base URLs as one JSON line."""

from orderbook.boot import boot

boot(grpc=False)  # the simulator serves no gRPC: only gevent's monkey-patching, before anything else is imported

import json  # noqa: E402  (after boot(), on purpose)
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from orderbook.arguments import UsageError  # noqa: E402
from orderbook.logs import configure_logging, fatal_line  # noqa: E402
from orderbook.simulator.config import ConfigError, from_args, parser  # noqa: E402
from orderbook.simulator.control import ControlApi  # noqa: E402
from orderbook.simulator.replay import RecordingError  # noqa: E402
from orderbook.simulator.simulator import Simulator  # noqa: E402
from orderbook.simulator.wire import WireServer  # noqa: E402

logger = logging.getLogger("orderbook.simulator")
PARENT_CHECK_INTERVAL = 0.5


def _stop_when_orphaned(parent: int, stopping: Event) -> None:
    """An orphan is re-parented: its parent id changes. Polled, as no signal tells of a SIGKILLed parent."""
    while os.getppid() == parent:
        gevent.sleep(PARENT_CHECK_INTERVAL)
    logger.warning("simulator: the process that started it (%d) is gone; stopping", parent)
    stopping.set()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except UsageError as exc:
        print(fatal_line("exchange-sim", str(exc)), file=sys.stderr)
        return 2
    configure_logging(args.log_level, args.log_format)
    try:
        simulator = Simulator(from_args(args))
    except (ConfigError, RecordingError) as exc:
        print(fatal_line("exchange-sim", str(exc), args.log_format), file=sys.stderr)
        return 2
    control = WireServer(args.host, args.control_port, http=ControlApi(simulator).handle, name="control")
    stopping = Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    if args.exit_with_parent:
        gevent.spawn(_stop_when_orphaned, os.getppid(), stopping)
    simulator.start()
    control.start()
    print(json.dumps({**simulator.urls(), "control": control.url("http")}), flush=True)
    stopping.wait()
    logger.info("simulator: stopping")
    control.stop(timeout=0.2)
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
