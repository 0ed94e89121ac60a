"""tests.support.debian: a program several callers miss at once (the suite's parallel workers on a fresh machine) is
installed once; the others wait and find it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support import debian


def test_callers_missing_the_same_program_at_once_install_it_once(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    installs: list[str] = []

    def install(package: str, program: str) -> None:
        time.sleep(0.2)  # an apt-get run, long enough for every caller to find the program missing meanwhile
        installs.append(package)

    monkeypatch.setattr(debian, "INSTALL_LOCK", tmp_path / "install.lock")
    monkeypatch.setattr(debian.os, "geteuid", lambda: 0)
    monkeypatch.setattr(debian.shutil, "which", lambda program: "/usr/bin/redis-server" if installs else None)
    monkeypatch.setattr(debian, "_install", install)
    found: list[str] = []
    callers = [threading.Thread(target=lambda: found.append(debian.find_or_install("redis-server", "redis-server")))
               for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(10)
    assert installs == ["redis-server"]
    assert found == ["/usr/bin/redis-server"] * 4
