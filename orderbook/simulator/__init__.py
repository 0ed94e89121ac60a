"""Local exchange simulator: Binance and Bitstamp wire protocols on loopback.

Neither this machine nor CI can reach the exchanges, so every test, the benchmark and the offline demo see an
exchange through this package. It runs as its own process (``bin/exchange-sim``), prints one JSON line of base
URLs, and is driven over an HTTP control API (:mod:`.control`, or :class:`.process.SimulatorControl` from Python).

Modules, one job each:

- :mod:`.wire` -- HTTP/1.1 + WebSocket server on gevent, able to misbehave on purpose
- :mod:`.market` -- the seeded market model, stepped without a clock (so a seed gives the same events)
- :mod:`.exchange` -- what both venues share: true book, connections, REST faults, common faults
- :mod:`.binance`, :mod:`.bitstamp` -- each venue's wire protocol and its own faults
- :mod:`.feed` -- what moves a venue in time: the model at a rate, or a recording at its pace
- :mod:`.replay` -- loading recorded data sets from the repository's ``recordings/``
- :mod:`.faults`, :mod:`.ratelimit` -- fault building blocks; Binance's REST weight budget
- :mod:`.listing` -- what each venue says it lists (exchangeInfo, trading-pairs-info)
- :mod:`.simulator` -- the whole simulator as one object; :mod:`.control` -- its HTTP control API
- :mod:`.config`, :mod:`.cli` -- flags and the process entry point; :mod:`.process` -- run it from tests

Typical use from a test::

    with SimulatorProcess("--rate", "2000", "--snapshot-delay", "0.5") as sim:
        ws = websocket.create_connection(sim.urls["binance_ws"] + "/ws/ethbtc@depth@100ms")
        sim.control.gap(events=3)
        truth = sim.control.truth(depth=10)

Several symbols (``--symbol ETHBTC,BTCUSDT``) are served on both venues, each its own seeded market at ``--rate``
on the same connections (streams and channels name their symbol); the first is the default that the control API
means when no ``symbol`` is given, and its market is the same whatever other symbols are served. A symbol can be
served on one venue only (``--binance-only-symbol``, ``--bitstamp-only-symbol``): the other venue knows it no more
than any symbol it does not list. Each venue lists what it serves, as the real ones do (:mod:`.listing`: Binance's
``GET /api/v3/exchangeInfo``, Bitstamp's ``GET /api/v2/trading-pairs-info/``).

Start with ``--paused`` and call ``resume()`` once clients are connected to make a run reproducible from its
first event (same seed and same control calls while paused => same events, apart from timestamps).
"""
