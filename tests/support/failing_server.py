"""``bin/run-server`` with its Binance connection made to fail, for the supervision tests:
``python -m tests.support.failing_server once|always [run-server flags]``. ``once``: the first session raises,
the next ones run; ``always``: every one raises."""

from orderbook.boot import boot

boot()

import sys  # noqa: E402

from orderbook import server  # noqa: E402
from orderbook.feed.connection import VenueConnection  # noqa: E402
from orderbook.feed.settings import SessionEnd  # noqa: E402


def main() -> int:
    mode, argv = sys.argv[1], sys.argv[2:]
    session = VenueConnection._session
    failed: list[str] = []

    def failing_session(connection: VenueConnection) -> SessionEnd:
        if connection.venue.name == "binance" and (mode == "always" or not failed):
            failed.append(connection.name)
            raise RuntimeError("made to fail by the test")
        return session(connection)

    VenueConnection._session = failing_session  # type: ignore[method-assign, assignment]
    return server.main(argv)


if __name__ == "__main__":
    sys.exit(main())
