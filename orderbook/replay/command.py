"""What ``bin/replay`` and ``bin/book-at`` share as commands: their exit codes, and the lines they say on stderr
(a problem met while reading, said as it is met; an error that ends the command, said once)."""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_OK = 0
EXIT_USAGE = 2
"""A bad argument, or a recording that cannot be read for what was asked: one line says which."""


def problem_line(prog: str) -> Callable[[str], None]:
    """Says a problem (a file cut short, a record that does not read) on stderr as ``prog: ...``, at once."""

    def say(line: str) -> None:
        print(f"{prog}: {line}", file=sys.stderr, flush=True)

    return say


def refused(prog: str, error: Exception) -> int:
    """Says why the command cannot go on, in one line on stderr; the exit code to end with."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return EXIT_USAGE
