"""The fast tier on every other Python the README promises (3.11 and newer) that this machine has:
``python -m tests.versions`` (``make test-versions``, part of ``make test``).

The suite's main run uses the checkout's ``.venv``; this runs pytest with the arguments given (``make test-versions``
gives ``make test-fast``'s selection) under each other supported version found, so that a feature or a behaviour of
one version only is caught here rather than by a user. A version is found as ``python3.N`` on the PATH, or in
pyenv's versions directory (``$PYENV_ROOT/versions``, by default ``~/.pyenv/versions``), and counts only once it
runs and says it is 3.N (a pyenv shim for a version not selected does not). A version that is absent is skipped
with one line saying so: only what exists is tested.

Each version gets its own virtual environment, ``.venv-3.N`` (git ignores them), made once and again whenever
setup.cfg, pyproject.toml or constraints.txt changes, with the project and its test extras installed (pinned). The
installs run one after the other (each writes the checkout's ``orderbook.egg-info``); the test runs side by side,
each on one core, their output kept in ``.venv-3.N/fast-tier.log`` and shown when a run fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OLDEST = 11
"""3.11: setup.cfg's python_requires."""
RELEASED = 14
"""The newest version released when this was written: a missing one up to it is named; newer ones are looked for
quietly."""
NEWEST_LOOKED_FOR = 19
SETUP_FILES = ("setup.cfg", "pyproject.toml", "constraints.txt")
NO_CACHE = ["-p", "no:cacheprovider"]
"""No cache writes: several runs share the checkout."""


@dataclass(frozen=True)
class Version:
    minor: int
    python: Path

    @property
    def name(self) -> str:
        return f"3.{self.minor}"

    @property
    def venv(self) -> Path:
        return REPO_ROOT / f".venv-{self.name}"

    @property
    def log(self) -> Path:
        return self.venv / "fast-tier.log"


def _reports(python: str | Path, minor: int) -> bool:
    """Whether ``python`` runs and is 3.``minor``."""
    try:
        result = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"],
                                capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.split() == ["3", str(minor)]


def _candidates(minor: int) -> Iterator[Path]:
    if on_path := shutil.which(f"python3.{minor}"):
        yield Path(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    yield from sorted(pyenv.glob(f"3.{minor}.*/bin/python3.{minor}"), reverse=True)


def find(minor: int) -> Version | None:
    for python in _candidates(minor):
        if _reports(python, minor):
            return Version(minor, python)
    return None


def _ready(version: Version) -> bool:
    stamp = version.venv / ".ready"
    return stamp.exists() and all(stamp.stat().st_mtime >= (REPO_ROOT / name).stat().st_mtime
                                  for name in SETUP_FILES)


def set_up(version: Version) -> None:
    """``.venv-3.N`` with the project and its test extras, as ``make install`` makes ``.venv``."""
    if _ready(version):
        return
    print(f"{version.name}: setting up {version.venv.name} with {version.python}", flush=True)
    python = version.venv / "bin" / "python"
    for command in ([str(version.python), "-m", "venv", "--clear", str(version.venv)],
                    [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                    [str(python), "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[test]"]):
        subprocess.run(command, cwd=REPO_ROOT, check=True)
    (version.venv / ".ready").touch()


def run_fast_tiers(versions: list[Version], pytest_args: list[str]) -> bool:
    """The fast tier under each version at once; True if every run passed."""
    runs = []
    for version in versions:
        with version.log.open("w") as log:
            command = [str(version.venv / "bin" / "python"), "-m", "pytest", *NO_CACHE, *pytest_args]
            runs.append((version, subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)))
    passed = True
    for version, run in runs:
        code = run.wait()
        lines = version.log.read_text(errors="replace").splitlines()
        if code != 0:
            passed = False
            print(f"--- Python {version.name}: the fast tier failed (exit {code}); {version.log}:")
            print("\n".join(lines[-200:]))
        print(f"Python {version.name} ({version.venv.name}), the fast tier:\n{lines[-1] if lines else 'no output'}",
              flush=True)
    return passed


SET_UP_ONLY = "--set-up-only"
"""Only make each version's ``.venv-3.N`` ready: ``make test`` does it while its main run goes on."""


def main(argv: list[str]) -> int:
    """Arguments are passed on to pytest: ``make test-versions`` passes the fast tier's selection; with
    :data:`SET_UP_ONLY` alone, the versions' environments are made ready and nothing is run."""
    here = sys.version_info.minor
    versions = []
    for minor in range(OLDEST, NEWEST_LOOKED_FOR + 1):
        if minor == here:
            continue  # the main run's own
        if (version := find(minor)) is not None:
            versions.append(version)
        elif minor <= RELEASED:
            print(f"Python 3.{minor}: not found on this machine (python3.{minor} on PATH, or pyenv); skipped")
    print(f"The fast tier on Python {', '.join(v.name for v in versions) or 'no other version'} "
          f"(the main run is 3.{here}'s)", flush=True)
    for version in versions:
        set_up(version)
    if argv == [SET_UP_ONLY]:
        return 0
    return 0 if run_fast_tiers(versions, argv) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
