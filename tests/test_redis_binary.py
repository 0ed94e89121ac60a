"""The service never installs redis-server: without one on PATH, the cluster demo's start fails in one line that says
how to get it."""

from __future__ import annotations

import importlib.util

import pytest

from orderbook.relay import demo, redis_process


def test_no_redis_server_on_path_is_one_line_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_process.shutil, "which", lambda program: None)
    with pytest.raises(redis_process.RedisMissing, match=r"apt-get install redis-server"):
        redis_process.redis_server_binary()


def test_the_cluster_demo_without_redis_server_exits_2_with_that_line(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(redis_process.shutil, "which", lambda program: None)
    assert demo.main(["--any-ports"]) == demo.EXIT_FAILED
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("cluster-demo: error: redis-server not found on PATH"), error


def test_the_package_has_no_installer() -> None:
    """Development tooling stays out of the installed package (tests/support/debian.py installs for the tests)."""
    assert importlib.util.find_spec("orderbook.debian") is None
