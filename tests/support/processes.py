"""Child processes the tests start and signal: started with default signal dispositions, ended politely first."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from os import PathLike

RESET_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_SET_AND_EXEC = (
    "import os, signal, sys\n"
    "for signum in map(int, sys.argv[2].split(',')): signal.signal(signum, getattr(signal, sys.argv[1]))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def _exec_with(disposition: str, argv: Sequence[str | PathLike[str]]) -> list[str]:
    signums = ",".join(str(int(signum)) for signum in RESET_SIGNALS)
    return [sys.executable, "-I", "-S", "-c", _SET_AND_EXEC, disposition, signums, *(str(arg) for arg in argv)]


def with_default_signals(argv: Sequence[str | PathLike[str]]) -> list[str]:
    """``argv``, run with SIGINT and SIGTERM at their default dispositions whatever this process inherited.

    A background job of a non-interactive shell (``make test &`` in a script) starts with SIGINT ignored, and an
    ignored signal stays ignored across fork and exec: a child a test means to stop with SIGINT would rightly go on
    ignoring it. Every test that signals a child it started starts it through this. The reset is made by a short
    Python that then execs ``argv`` (the same pid, so signals reach it), not by ``preexec_fn``: that runs Python
    between fork and exec, which may deadlock in a test process with threads (gRPC's, the readers'), as the
    subprocess documentation warns.
    """
    return _exec_with("SIG_DFL", argv)


def with_ignored_signals(argv: Sequence[str | PathLike[str]]) -> list[str]:
    """``argv``, run with SIGINT and SIGTERM ignored: as a background job started from a script runs it."""
    return _exec_with("SIG_IGN", argv)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
