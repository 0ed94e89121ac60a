"""Figures, medians over repeated runs, the printed table and the JSON file.

Each figure carries its target and whether it met it; every scenario carries the machine it ran on (cores,
Python), so a JSON file stands on its own when compared with one from another machine. A median alone hides how
noisy its runs were (a shared 2-core machine can halve a figure in one run), so the table and the JSON also give
the range of the runs: a target missed by a median whose range straddles it is noise, one missed by every run
is not.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


@dataclass
class Figure:
    """One measured number. ``better`` is "lower" or "higher": which way the target is met (None: no target)."""

    name: str
    value: float | None
    unit: str
    target: float | None = None
    better: str | None = None
    runs: list[float | None] = field(default_factory=list)
    note: str = ""

    @property
    def low(self) -> float | None:
        """The lowest of the runs (None when no run produced a value)."""
        present = [value for value in self.runs if value is not None]
        return min(present) if present else None

    @property
    def high(self) -> float | None:
        present = [value for value in self.runs if value is not None]
        return max(present) if present else None

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.better is None:
            return None
        if self.value is None:
            return False
        return self.value <= self.target if self.better == "lower" else self.value >= self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "min": self.low, "max": self.high, "pass": self.passed}


@dataclass
class ScenarioResult:
    name: str
    figures: list[Figure]
    repeat: int
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **{key: value for key, value in machine().items() if key in ("cores", "python")},
            "repeat": self.repeat,
            "figures": [figure.to_json() for figure in self.figures],
            "details": self.details,
            "error": self.error,
        }


def median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in 0..1) of an unsorted sequence; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def combine(runs: Sequence[list[Figure]]) -> list[Figure]:
    """Figures of repeated runs (same names, same order) -> one figure each: the median, with every run kept."""
    combined = []
    for same in zip(*runs):
        first = same[0]
        values = [figure.value for figure in same]
        combined.append(Figure(first.name, median(values), first.unit, first.target, first.better, values,
                               first.note))
    return combined


def repeated(run: Callable[[], tuple[list[Figure], dict[str, Any]]], times: int) -> tuple[list[Figure], list[Any]]:
    """Run ``times`` times; medians of the figures, and each run's details."""
    figures, details = [], []
    for _ in range(times):
        run_figures, run_details = run()
        figures.append(run_figures)
        details.append(run_details)
    return combine(figures), details


def failed_targets(results: Sequence[ScenarioResult]) -> list[str]:
    """"scenario: figure" for every figure that missed its target, and "scenario: ERROR" for a scenario that did
    not run (it met none of its targets)."""
    failed = []
    for result in results:
        if result.error:
            failed.append(f"{result.name}: ERROR")
        failed += [f"{result.name}: {figure.name}" for figure in result.figures if figure.passed is False]
    return failed


def format_number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("count", "streams", "frames/s", "msgs/s") or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


def _target(figure: Figure) -> str:
    if figure.target is None:
        return ""
    sign = "<=" if figure.better == "lower" else ">="
    return f"{sign} {format_number(figure.target, figure.unit)}"


def _range(figure: Figure) -> str:
    """"low..high" of the runs; empty for a single run, where there is no spread to show. Runs that measured
    nothing are counted too: a median of the one run in three that produced a value must not pass for three."""
    if len(figure.runs) < 2:
        return ""
    missing = sum(1 for value in figure.runs if value is None)
    parts = []
    if len(figure.runs) - missing >= 2:
        parts.append(f"{format_number(figure.low, figure.unit)}..{format_number(figure.high, figure.unit)}")
    if missing:
        parts.append(f"({missing} of {len(figure.runs)} n/a)")
    return " ".join(parts)


def table(results: Sequence[ScenarioResult]) -> str:
    info = machine()
    rows = [("scenario", "runs", "figure", "value", "range", "unit", "target", "result")]
    for result in results:
        if result.error:
            rows.append((result.name, str(result.repeat), "ERROR", result.error[:60], "", "", "", "FAIL"))
        for figure in result.figures:
            verdict = {True: "pass", False: "FAIL", None: ""}[figure.passed]
            rows.append((result.name, str(result.repeat), figure.name, format_number(figure.value, figure.unit),
                         _range(figure), figure.unit, _target(figure), verdict))
    return "\n".join([f"bin/bench: {info['cores']} cores, Python {info['python']} ({info['platform']})",
                      "value: the median of the runs; range: the lowest..highest run (none for one run)",
                      *aligned(rows, right=(1, 3, 4))])


def aligned(rows: Sequence[Sequence[str]], right: Sequence[int]) -> list[str]:
    """``rows`` (the first one the header) as lines of aligned columns, a rule under the header; the columns in
    ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def write_json(path: Path, results: Sequence[ScenarioResult], options: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine(),
        "argv": sys.argv[1:],
        "options": options,
        "scenarios": {result.name: result.to_json() for result in results},
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
