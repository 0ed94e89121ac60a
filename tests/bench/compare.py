"""``bin/bench --compare REV``: the same scenarios on REV and on this working tree, run alternately, with the ratio.

Absolute figures change from machine to machine, and on one machine from minute to minute (another process, the
CPU's clock): a before/after pair is only worth its ratio when both were measured in the same stretch of time. So
REV is checked out in a temporary git worktree and the two sides take turns, one run of the scenarios each, the
order swapped every round (REV first, then this tree first, ...), so neither side always runs on the warmer or
the busier machine. Each side runs its own ``bin/bench`` (its own scenario code, its own servers) on this
Python: the launcher puts its checkout first on PYTHONPATH (``bin/_launch``, ``ORDERBOOK_PYTHON``).

With ``--service-only`` both sides run this tree's ``bin/bench`` and only the servers it starts come from REV: a
scenario newer than REV still compares the service itself (its in-process figures are then this tree's twice).

The table shows each figure's median over the rounds with its range, both sides, and this tree / REV: how
before/after figures in commit messages are made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.bench.live import SERVICE_CHECKOUT
from tests.bench.report import Figure, aligned, combine, format_number

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKING_TREE = "working tree"

Runs = dict[str, list[Figure]]
"""One side's figures of one round, by scenario."""


@contextmanager
def checked_out(rev: str, directory: Path) -> Iterator[Path]:
    """REV in a detached git worktree under ``directory``, removed again after."""
    path = directory / "rev"
    subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--quiet", "--detach", str(path), rev],
                   check=True, capture_output=True, text=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(path)],
                       check=False, capture_output=True)


def run_side(root: Path, bench_args: Sequence[str], json_path: Path, service: Path | None = None) -> Runs:
    """One run of ``root``'s bin/bench with ``bench_args`` (one repeat each); its figures by scenario. ``service``:
    the checkout whose servers it starts (:data:`~tests.bench.live.SERVICE_CHECKOUT`; None: ``root``)."""
    env = {**os.environ, "ORDERBOOK_PYTHON": sys.executable}
    env.pop(SERVICE_CHECKOUT, None)
    if service is not None:
        env[SERVICE_CHECKOUT] = str(service)
    subprocess.run([str(root / "bin" / "bench"), *bench_args, "--repeat", "1", "--json", str(json_path)],
                   env=env, check=False, stdout=sys.stderr)
    return read_figures(json.loads(json_path.read_text(encoding="utf-8")))


def read_figures(document: dict[str, Any]) -> Runs:
    """The figures of a bin/bench JSON document, by scenario (a scenario that failed has none)."""
    return {name: [Figure(f["name"], f["value"], f["unit"], f.get("target"), f.get("better"))
                   for f in scenario.get("figures", [])]
            for name, scenario in document.get("scenarios", {}).items()}


def order(round_index: int, rev: str) -> tuple[str, str]:
    """Which side runs first in this round: REV in even rounds, this tree in odd ones."""
    return (rev, WORKING_TREE) if round_index % 2 == 0 else (WORKING_TREE, rev)


def merged(rounds: Sequence[Runs]) -> Runs:
    """Every round's figures of one side, by scenario: medians with the runs kept. A scenario or figure missing
    from a round (it failed there) counts as a run without a value."""
    scenarios = dict.fromkeys(name for runs in rounds for name in runs)
    result: Runs = {}
    for scenario in scenarios:
        names = dict.fromkeys(figure.name for runs in rounds for figure in runs.get(scenario, []))
        template = {figure.name: figure for runs in rounds for figure in runs.get(scenario, [])}
        per_round = [[next((f for f in runs.get(scenario, []) if f.name == name),
                           Figure(name, None, template[name].unit)) for name in names] for runs in rounds]
        result[scenario] = combine(per_round)
    return result


def _span(figure: Figure) -> str:
    if len(figure.runs) < 2 or figure.low is None or figure.high is None:
        return ""
    return f"{format_number(figure.low, figure.unit)}..{format_number(figure.high, figure.unit)}"


def ratio(before: Figure | None, after: Figure) -> float | None:
    """This tree / REV, None when either has no value or REV's is 0."""
    if before is None or before.value is None or after.value is None or before.value == 0:
        return None
    return after.value / before.value


def table(rev: str, before: Runs, after: Runs) -> str:
    rows = [("scenario", "figure", "unit", rev, "range", WORKING_TREE, "range", "ratio")]
    for scenario, figures in after.items():
        theirs = {figure.name: figure for figure in before.get(scenario, [])}
        for figure in figures:
            old = theirs.get(figure.name)
            value = ratio(old, figure)
            rows.append((scenario, figure.name, figure.unit,
                         format_number(old.value if old else None, figure.unit), _span(old) if old else "",
                         format_number(figure.value, figure.unit), _span(figure),
                         "n/a" if value is None else f"{value:.2f}x"))
    return "\n".join([f"bin/bench --compare {rev}: medians of the rounds (each side run alternately), ratio = "
                      f"{WORKING_TREE} / {rev}", *aligned(rows, right=(3, 4, 5, 6, 7))])


def compare(rev: str, bench_args: Sequence[str], rounds: int, json_path: Path, service_only: bool = False) -> int:
    """Run ``bench_args`` on REV and on this tree alternately ``rounds`` times; print the table, write the JSON.
    ``service_only``: both sides run this tree's bin/bench (harness, simulator, in-process figures); REV's side
    starts REV's ``bin/run-server`` and ``bin/run-edge``: for a scenario REV's harness does not have."""
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as workdir, checked_out(rev, Path(workdir)) as other:
        roots = {rev: REPO_ROOT if service_only else other, WORKING_TREE: REPO_ROOT}
        services = {rev: other if service_only else None, WORKING_TREE: None}
        sides: dict[str, list[Runs]] = {rev: [], WORKING_TREE: []}
        for index in range(rounds):
            for side in order(index, rev):
                print(f"round {index + 1} of {rounds}: {side} ...", file=sys.stderr, flush=True)
                json_file = Path(workdir) / f"round-{index}-{'rev' if side == rev else 'tree'}.json"
                sides[side].append(run_side(roots[side], bench_args, json_file, services[side]))
    before, after = merged(sides[rev]), merged(sides[WORKING_TREE])
    print(table(rev, before, after))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({
        "rev": rev, "rounds": rounds, "bench_args": list(bench_args), "service_only": service_only,
        "figures": {side: {scenario: [figure.to_json() for figure in figures] for scenario, figures in runs.items()}
                    for side, runs in ((rev, before), (WORKING_TREE, after))},
    }, indent=1) + "\n", encoding="utf-8")
    print(f"figures written to {json_path}")
    return 0 if all(after.values()) and all(before.values()) else 1
