"""Programs from Debian's packages (redis-server, Prometheus) that the cluster demo and the tests start for real,
installed on first use.

As root on Debian (CI, a container) a missing package is installed; anywhere else the caller fails saying what to
install, rather than skip silently. A package may also register a system service: it is never used; each user
starts its own server, with its own files, on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess


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


def find_or_install(program: str, package: str) -> str:
    """Absolute path of ``program``, installing Debian's ``package`` when it is missing (as root)."""
    path = shutil.which(program)
    if path is None:
        _install(package, program)
        path = shutil.which(program)
    if path is None:
        raise ToolMissing(f"{package!r} is installed but {program!r} is still not on PATH")
    return path
