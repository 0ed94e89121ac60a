from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.usefixtures("starts_processes")
def test_the_soft_fd_limit_is_raised_to_the_hard_limit() -> None:
    # In a child whose soft limit starts low, so that this test process keeps its own.
    code = (
        "import resource\n"
        "from orderbook.serving.limits import raise_fd_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "assert raise_fd_limit() == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert result.stdout == "ok\n", result.stderr
