"""``bin/run-edge``: an edge's entry point (:mod:`orderbook.edge`). Boots as the server does
(:mod:`orderbook.boot`): first, before any other import."""

from orderbook.boot import boot

boot()

import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402

from orderbook import process  # noqa: E402
from orderbook.config import EDGE_ENV_PREFIX, EdgeConfig, load_edge_config  # noqa: E402
from orderbook.edge import Edge  # noqa: E402


def _start(config: EdgeConfig, beside: ExitStack) -> Edge:
    edge = Edge(config)
    edge.start()
    return edge


def main(argv: Sequence[str] | None = None) -> int:
    return process.main("run-edge", argv, load_edge_config, EDGE_ENV_PREFIX, _start)


if __name__ == "__main__":
    sys.exit(main())
