"""The benchmark suite (``bin/bench``): throughput, latency, fan-out, memory and start-up against the simulator.

Not part of the test run: no module here is named ``test_*``; ``tests/test_bench_smoke.py`` runs a quick pass.
"""
