"""``--ready-file``: the ports a server bound, for a supervisor or test that asked for port 0."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path


def write_ready_file(path: str, grpc_port: int, metrics_port: int | None) -> None:
    """``--ready-file``: the ports bound, as one JSON line, written once both listeners are up.

    Written to a temporary file beside it and renamed over it, so a reader polling for the file never sees it half
    written. The file stays after the server exits: a reader should use a fresh path (or remove it) per start.
    """
    line = json.dumps({"grpc_port": grpc_port, "metrics_port": metrics_port}) + "\n"
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        with open(partial, "w") as file:
            file.write(line)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


class NotReady(RuntimeError):
    """The process exited, or took too long, before writing its ready file."""


def read_ready_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> dict[str, int]:
    """The ports a process started with ``--ready-file path`` bound, once it has written them."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            program = proc.args[0] if isinstance(proc.args, list) else proc.args
            raise NotReady(f"{os.fsdecode(program) if isinstance(program, bytes) else program} exited with "
                           f"{proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise NotReady(f"no {path} within {timeout:g} s")
        time.sleep(0.05)
    return dict(json.loads(path.read_text()))
