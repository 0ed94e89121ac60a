"""A clone anywhere runs its tests: nothing the project tracks reads a folder beside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.recordings import RECORDINGS_DIR, data_sets

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
        if (name.endswith((".py", ".cfg", ".toml", ".yml", ".yaml", ".sh", "Makefile"))
                or name.startswith(("bin/", ".ci/"))):
            text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
            offenders += [f"{name}: {match.group(0)}" for match in OUTSIDE.finditer(text)]
    assert offenders == []


PATH_NAMED = re.compile(r"(?<![\w./-])((?:orderbook|tests|docs|bin|monitoring|recordings|proto|\.ci)/[\w./-]*\w)")
FILE_NAMED = re.compile(r"(?<![\w./-])([\w-]+\.py|STYLE\.md|RUNTIME-NOTES\.md|DESIGN-SKETCH\.md)\b")
NOT_OURS = {"setup.py", "_pb2.py", "bin/grafana", "tests/DIR"}
"""Names that are no file of this repository: a generic name, a suffix, Grafana's own program, a placeholder."""


def test_every_file_the_code_and_docs_name_is_in_the_repository():
    """A docstring or a README that cites a file the repository lacks (a note kept beside it, a module renamed)
    sends the reader nowhere: every path under the repository's folders, and every bare module name, must resolve.
    (docs/protocols.md names the team's first notes, PROTOCOLS.md, on purpose: as what it replaced.)"""
    tracked = tracked_files()
    paths = set(tracked) | {str(parent) for name in tracked for parent in Path(name).parents}
    basenames = {Path(name).name for name in tracked}
    missing = []
    for name in tracked:
        if not name.endswith((".py", ".md", ".proto", ".yml", ".cfg", ".toml")) or name.endswith("_pb2.py"):
            continue
        text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
        for match in PATH_NAMED.finditer(text):
            path = match.group(1).rstrip("./")
            if path not in paths and path not in NOT_OURS:
                missing.append(f"{name}: {path}")
        for match in FILE_NAMED.finditer(text):
            if match.group(1) not in basenames and match.group(1) not in NOT_OURS:
                missing.append(f"{name}: {match.group(1)}")
    assert missing == []
