"""Command-line parsing for the project's commands: every mistake is one line naming what the user typed.

argparse's own way, a usage block then ``prog: error: argument --depth: invalid int value: 'ten'``, buries the
one fact that matters under lines that do not, and names a type function where it should say what is expected.
:class:`OneLineParser` raises :class:`UsageError` instead (the command prints it in its own voice), and the value
types here say what they expect: ``--depth: expected a whole number, got 'ten'``. ``--help`` is unchanged.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


class UsageError(ValueError):
    """A command line (or environment setting) that cannot be parsed. ``setting`` is the flag it is about, when
    there is one, ``detail`` what is wrong with it; ``str()`` is the one line to show."""

    def __init__(self, setting: str | None, detail: str) -> None:
        super().__init__(f"{setting}: {detail}" if setting else detail)
        self.setting = setting
        self.detail = detail


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` rather than print the usage and exit."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(exit_on_error=False, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        try:
            return super().parse_known_args(args, namespace)
        except argparse.ArgumentError as error:  # a bad value, or a flag without its value: which flag is known
            raise UsageError(error.argument_name, error.message) from None

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """As argparse's; unknown flags raise :class:`UsageError` on every Python: 3.13 raises ``ArgumentError``
        for them where earlier versions called :meth:`error`."""
        try:
            return super().parse_args(args, namespace)
        except argparse.ArgumentError as error:
            raise UsageError(error.argument_name, error.message) from None

    def error(self, message: str) -> None:  # type: ignore[override]  # raises instead of exiting
        """Unknown flags and the like: argparse knows no single flag to blame."""
        raise UsageError(None, message)


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_whole_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive_number(text: str, what: str = "a positive number") -> float:
    """A finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    return positive_number(text, "a positive number of seconds")


def one_of(*choices: str) -> Callable[[str], str]:
    """A word from ``choices``, in any case (``DEBUG`` is ``debug``); the value is the lower-case word. Use with
    ``metavar="{a,b}"`` so that ``--help`` lists the choices."""

    def choice(text: str) -> str:
        if text.lower() not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text.lower()

    return choice
