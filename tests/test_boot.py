"""orderbook.boot: what every entry point runs first. Each case runs in a fresh interpreter (a boot is for good)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.usefixtures("starts_processes")  # each test boots a fresh Python


def run_boot(code: str, **env: str) -> str:
    environ = {key: value for key, value in os.environ.items() if key != "GRPC_VERBOSITY"} | env
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=environ)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_boot_sets_grpc_core_quiet_patches_and_installs_ready_first_polling() -> None:
    out = run_boot(
        "import sys\n"
        "from orderbook.boot import boot\n"
        "assert 'grpc' not in sys.modules and 'gevent' not in sys.modules  # importing boot imports neither\n"
        "polls = boot()\n"
        "import os, gevent.monkey\n"
        "from grpc._cython import cygrpc\n"
        "from orderbook.gevent_polling import ReadyFirstPolls\n"
        "assert isinstance(polls, ReadyFirstPolls) and cygrpc.g_gevent_threadpool is polls\n"
        "assert gevent.monkey.is_module_patched('socket') and gevent.monkey.is_module_patched('threading')\n"
        "assert boot() is polls  # idempotent: the same polls, nothing installed twice\n"
        "print(os.environ['GRPC_VERBOSITY'])\n"
    )
    assert out == "NONE\n"


def test_a_grpc_verbosity_in_the_environment_wins() -> None:
    assert run_boot("from orderbook.boot import boot\nboot()\nimport os\nprint(os.environ['GRPC_VERBOSITY'])\n",
                    GRPC_VERBOSITY="ERROR") == "ERROR\n"


@pytest.mark.parametrize("then_grpc", [False, True])
def test_without_grpc_boot_only_patches(then_grpc: bool) -> None:
    out = run_boot(
        "import os, sys\n"
        "from orderbook.boot import boot\n"
        "assert boot(grpc=False) is None\n"
        "import gevent.monkey\n"
        "assert gevent.monkey.is_module_patched('socket')\n"
        "print('grpc' in sys.modules, 'GRPC_VERBOSITY' in os.environ)\n"
        + ("assert boot() is not None  # the gRPC steps are added later\n" if then_grpc else "")
    )
    assert out == "False False\n"


def test_settle_memory_freezes_what_is_loaded_and_spaces_young_collections() -> None:
    out = run_boot(
        "import gc\n"
        "from orderbook.boot import YOUNG_COLLECTION_EVERY, boot, settle_memory\n"
        "boot()\n"
        "import orderbook.app\n"
        "middle, old = gc.get_threshold()[1:]\n"
        "settle_memory()\n"
        "assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, middle, old)\n"
        "assert gc.get_freeze_count() > 10_000  # modules, classes, grpc: out of every collection from now on\n"
        "cycle = []\n"
        "cycle.append(cycle)\n"
        "del cycle\n"
        "print(gc.collect() >= 1)  # cyclic garbage made afterwards is still collected\n"
    )
    assert out == "True\n"


def test_the_client_quiets_grpc_core_before_importing_grpc_and_patches_nothing() -> None:
    """bin/client is not gevent-patched, yet gRPC core's own lines would precede its one error line (a --tls-ca
    that grpc cannot load: four of them): it takes step 1 alone, before grpc is imported."""
    out = run_boot(
        "import os, sys\n"
        "import orderbook.client\n"
        "import gevent.monkey\n"
        "print(os.environ['GRPC_VERBOSITY'], 'grpc' in sys.modules, gevent.monkey.is_module_patched('socket'))\n"
    )
    assert out == "NONE True False\n"
