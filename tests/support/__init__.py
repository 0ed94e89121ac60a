"""What the tests share: waiting for a condition, starting and stopping processes, ports, the service under test.

- :mod:`tests.support.waiting`: :func:`~tests.support.waiting.wait_until`, the one polling loop.
- :mod:`tests.support.processes`: child processes started with known signal dispositions, stopped politely first.
- :mod:`tests.support.ports`: ports without races: servers bind port 0 and report what they bound.
- :mod:`tests.support.service`: ``bin/run-server`` as a process (:class:`ServerProcess`), gRPC readers, books.

Imported as ``tests.support...`` (the repository root is on ``sys.path``, setup.cfg's ``pythonpath``), from test
modules, conftests and helper scripts alike: nothing here is loaded by path. The fixtures that start the simulator,
the server and readers live in ``tests/conftest.py``, so every test folder gets them through the conftest chain.
"""
