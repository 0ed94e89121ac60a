"""The suite passes when started as a background job from a script (``make test &``), where SIGINT is ignored.

Such a job inherits SIGINT (and, under some supervisors, SIGTERM) ignored, and so would every process a test
starts: a test that stops its child with a signal must start it with the default dispositions
(:func:`tests.support.processes.with_default_signals`). Here the tests that send signals run in a child pytest that
starts the way such a job does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import with_default_signals, with_ignored_signals

pytestmark = pytest.mark.usefixtures("starts_processes")  # each test runs Pythons or pytest with signals ignored

REPO_ROOT = Path(__file__).resolve().parents[1]
SHOW_DISPOSITIONS = (
    "import signal\n"
    "def name(handler): return getattr(handler, 'name', getattr(handler, '__name__', handler))\n"
    "print(name(signal.getsignal(signal.SIGINT)), name(signal.getsignal(signal.SIGTERM)))\n"
)

SIGNALLING_TESTS = [
    "tests/serving/test_client.py::test_ctrl_c_exits_quietly",
    "tests/serving/test_grpc_server.py::test_sigterm_ends_open_streams_unavailable_and_exits_zero_quickly",
    "tests/simulator/test_sim_process.py::test_prints_base_urls_and_exits_0_promptly_on_signal",
    "tests/e2e/test_demo.py::test_demo_serves_both_venues_and_its_simulator_ends_with_it[sigterm]",
]


def dispositions(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=20).stdout.strip()


def test_ignored_signals_are_inherited_and_the_helper_resets_them():
    python = [sys.executable, "-c", SHOW_DISPOSITIONS]
    assert dispositions(with_ignored_signals(python)) == "SIG_IGN SIG_IGN"
    assert dispositions(with_ignored_signals(with_ignored_signals(python))) == "SIG_IGN SIG_IGN"
    # Python puts its own handler on a SIGINT it did not inherit ignored: Ctrl-C is KeyboardInterrupt again.
    assert dispositions(with_ignored_signals(with_default_signals(python))) == "default_int_handler SIG_DFL"


def test_the_tests_that_send_signals_pass_with_signals_ignored_at_start():
    pytest_argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SIGNALLING_TESTS]
    result = subprocess.run(with_ignored_signals(pytest_argv), cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{len(SIGNALLING_TESTS) + 1} passed" in result.stdout  # the simulator's test runs for two signals
