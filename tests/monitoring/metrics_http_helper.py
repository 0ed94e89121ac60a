"""The /metrics server (:mod:`orderbook.metrics_http`) alone in a gevent process, as the service runs it (run as
a script, not collected by pytest).

Serves :func:`metrics_http_support.fixed_registry`, plus with ``--slow-collect S`` a collector that takes S
seconds (yielding to the hub, as a collector waiting on another process would), so that scrapes overlap.
(The registry describes its collectors, so ``name[]`` filters work, as in the service.)
Prints ``PORT <n>`` once listening; the end of stdin or SIGTERM stops the server, which then prints
``OUTCOMES {json}`` and exits 0.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

from orderbook.boot import boot  # noqa: E402

boot(grpc=False)  # first: see orderbook.boot

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.fileobject import FileObjectThread  # noqa: E402
from metrics_http_support import fixed_registry  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

from orderbook.metrics_http import HttpLimits, MetricsHttpServer  # noqa: E402


class SlowCollector:
    """Takes ``seconds`` to collect; its sample counts the collections, so a test can tell shared builds apart."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.collections = 0

    def describe(self):
        yield GaugeMetricFamily("demo_collections", "Collections of the slow collector so far", value=0)

    def collect(self):
        self.collections += 1
        number = self.collections
        gevent.sleep(self.seconds)
        yield GaugeMetricFamily("demo_collections", "Collections of the slow collector so far", value=number)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slow-collect", type=float, default=0.0)
    parser.add_argument("--max-builds", type=int, default=HttpLimits().max_builds)
    parser.add_argument("--head-timeout", type=float, default=HttpLimits().head_timeout)
    args = parser.parse_args()
    registry = fixed_registry()
    if args.slow_collect:
        registry.register(SlowCollector(args.slow_collect))
    limits = HttpLimits(max_builds=args.max_builds, head_timeout=args.head_timeout)
    server = MetricsHttpServer(registry, "127.0.0.1", args.port, limits)
    server.start()
    print(f"PORT {server.port}", flush=True)
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)

    def stop_when_stdin_closes() -> None:
        FileObjectThread(sys.stdin).read()  # type: ignore[arg-type]  # a file object: gevent wraps it
        stop.set()

    gevent.spawn(stop_when_stdin_closes)
    stop.wait()
    server.stop(1.0)
    print(f"OUTCOMES {json.dumps(dict(server.outcomes))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
