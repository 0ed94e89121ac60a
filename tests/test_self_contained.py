"""A clone anywhere runs its tests: nothing the project tracks reads a folder beside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from recordings import RECORDINGS_DIR, data_sets

pytestmark = pytest.mark.usefixtures("starts_processes")  # git ls-files

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"\.\./shared|parents?\[\d\]\.parent\b|\.parent\s*/\s*[\"']shared[\"']")


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout.split()


def test_the_recordings_are_in_the_repository_and_tracked():
    assert RECORDINGS_DIR.resolve().is_relative_to(REPO_ROOT)
    tracked = set(tracked_files())
    for name in ("recordings/manifest.json", "recordings/README.md"):
        assert name in tracked, name
    for data_set in (*data_sets("binance"), *data_sets("bitstamp")):
        assert f"recordings/{data_set.exchange}/{data_set.name}.snapshot.json" in tracked, data_set.id
    assert len(data_sets("binance")) == 35 and len(data_sets("bitstamp")) == 28


def test_no_tracked_source_reads_a_folder_beside_the_repository():
    offenders = []
    for name in tracked_files():
        if name.endswith((".py", ".cfg", ".toml", ".yml", ".yaml", ".sh", "Makefile")) or name.startswith(("bin/", ".ci/")):
            text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
            offenders += [f"{name}: {match.group(0)}" for match in OUTSIDE.finditer(text)]
    assert offenders == []
