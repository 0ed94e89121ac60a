"""The bin/ launchers before set-up: one line saying what to run first and exit 2, never a traceback.

A copy of bin/ in an empty directory is a checkout where ``make install`` has not run. bin/bench is not among
them yet (see bin/_launch).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("starts_processes")  # each test runs a launcher from bin/

REPO_ROOT = Path(__file__).resolve().parents[1]
LAUNCHERS = ["run-server", "run-edge", "cluster-demo", "client", "exchange-sim", "soak", "bench", "book-at", "replay"]
NOT_SET_UP = ("{}: the project is not set up here: run 'make install' first "
              "(or set ORDERBOOK_PYTHON to a Python with the project installed)\n")


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkout = tmp_path_factory.mktemp("checkout")
    shutil.copytree(REPO_ROOT / "bin", checkout / "bin")
    return checkout


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with nothing installed (a virtual environment without even pip)."""
    where = tmp_path_factory.mktemp("bare-venv")
    venv.create(where, with_pip=False)
    return where / "bin" / "python"


def launch(launcher: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], **env}  # no ORDERBOOK_* from the environment the tests run in
    return subprocess.run([str(launcher), *args], capture_output=True, text=True, timeout=30, env=clean)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_before_set_up_each_launcher_says_to_run_make_install(fresh_checkout: Path, name: str) -> None:
    result = launch(fresh_checkout / "bin" / name, "--help")
    assert (result.returncode, result.stdout, result.stderr) == (2, "", NOT_SET_UP.format(name))


def test_a_half_made_virtual_environment_is_not_set_up(fresh_checkout: Path, tmp_path: Path) -> None:
    """``make install`` stopped part-way: .venv/bin/python exists, .venv/.ready does not."""
    checkout = tmp_path / "checkout"
    shutil.copytree(fresh_checkout, checkout)
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "python").symlink_to(sys.executable)
    result = launch(checkout / "bin" / "client", "--help")
    assert (result.returncode, result.stderr) == (2, NOT_SET_UP.format("client"))


@pytest.mark.parametrize("value", ["/no/such/python", "no-such-python-command", "/"])
def test_orderbook_python_that_cannot_run_is_an_error_not_a_fallback(fresh_checkout: Path, value: str) -> None:
    result = launch(fresh_checkout / "bin" / "run-server", ORDERBOOK_PYTHON=value)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"run-server: ORDERBOOK_PYTHON={value} is not an executable file\n"


def test_orderbook_python_without_the_project_says_how_to_install_it(fresh_checkout: Path, bare_python: Path) -> None:
    result = launch(fresh_checkout / "bin" / "exchange-sim", ORDERBOOK_PYTHON=str(bare_python))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"exchange-sim: ORDERBOOK_PYTHON={bare_python} is a Python without the project installed: run "
        f"'{bare_python} -m pip install -e {fresh_checkout}' (or unset ORDERBOOK_PYTHON and run 'make install')\n"
    )


@pytest.mark.parametrize("name", LAUNCHERS)
def test_once_set_up_each_launcher_runs(name: str) -> None:
    result = launch(REPO_ROOT / "bin" / name, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"usage: {name}"), result.stderr


def test_orderbook_python_with_the_project_is_used(fresh_checkout: Path) -> None:
    """The fresh copy has no .venv: ORDERBOOK_PYTHON alone makes it run (here, the Python running the tests)."""
    result = launch(fresh_checkout / "bin" / "client", "--help", ORDERBOOK_PYTHON=sys.executable)
    assert result.returncode == 0 and result.stdout.startswith("usage: client"), result.stderr


def test_a_launcher_runs_its_own_checkout_from_inside_another(tmp_path: Path) -> None:
    """``python -m`` puts the current directory first on sys.path: run from inside another checkout (as
    ``bin/bench --compare REV --service-only`` starts REV's servers), a launcher ran that checkout's code."""
    other = tmp_path / "other-checkout"
    (other / "orderbook").mkdir(parents=True)
    (other / "orderbook" / "__init__.py").write_text("raise SystemExit('the other checkout ran')\n")
    result = subprocess.run([str(REPO_ROOT / "bin" / "client"), "--help"], cwd=other, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "ORDERBOOK_PYTHON": sys.executable})
    assert result.returncode == 0 and "usage" in result.stdout, result.stderr
