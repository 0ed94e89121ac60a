"""Programs from Debian's packages (redis-server, Prometheus) that the tests and ``make cluster-demo`` start for
real, installed on first use.

Development tooling, outside the installed package: the service itself never installs anything (a missing
redis-server is one line from :func:`orderbook.relay.redis_process.redis_server_binary`). ``python -m
tests.support.debian PROGRAM PACKAGE`` is how the Makefile asks for one.

As root on Debian (CI, a container) a missing package is installed; anywhere else the caller fails saying what to
install, rather than skip silently. A package may also register a system service: it is never used; each user
starts its own server, with its own files, on loopback.

Several processes may want the same program at once (the test suite's parallel workers, a demo beside it): one
installs while the others wait on a lock, then find it installed. Without the lock, two apt-get runs collide on
dpkg's own lock and the second fails.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INSTALL_LOCK = Path(tempfile.gettempdir()) / "orderbook-debian-install.lock"


class ToolMissing(RuntimeError):
    """A program is not installed and cannot be installed from here."""


def _install(package: str, program: str) -> None:
    if os.geteuid() != 0:
        raise ToolMissing(f"{program} not found on PATH and not running as root; install it first: "
                          f"sudo apt-get install {package}")
    if shutil.which("apt-get") is None:
        raise ToolMissing(f"{program} not found on PATH and there is no apt-get to install {package!r}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            raise ToolMissing(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")


@contextmanager
def _one_install_at_a_time() -> Iterator[None]:
    """Holds :data:`INSTALL_LOCK` for the block, as root (only root installs: anyone else fails without it)."""
    if os.geteuid() != 0:
        yield
        return
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def find_or_install(program: str, package: str) -> str:
    """Absolute path of ``program``, installing Debian's ``package`` when it is missing (as root)."""
    path = shutil.which(program)
    if path is None:
        with _one_install_at_a_time():
            path = shutil.which(program)  # installed meanwhile by whoever held the lock
            if path is None:
                _install(package, program)
                path = shutil.which(program)
    if path is None:
        raise ToolMissing(f"{package!r} is installed but {program!r} is still not on PATH")
    return path


def main(argv: list[str]) -> int:
    """``PROGRAM PACKAGE``: prints the program's path, installing the package first if need be."""
    program, package = argv
    try:
        print(find_or_install(program, package))
    except ToolMissing as error:
        print(f"debian: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
