"""Log set-up: readable text for a terminal, or one JSON object per line for a log pipeline."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def fatal_line(program: str, message: str, fmt: str = "text") -> str:
    """The one line a command ends with when it cannot go on: ``program: error: message``, or with the JSON
    format an object like every other line (level ``critical``), so that a log pipeline reading JSON gets it too.
    Written without the logging set-up, which may not exist yet (the configuration itself was wrong)."""
    if fmt != "json":
        return f"{program}: error: {message}"
    record = logging.LogRecord(program, logging.CRITICAL, __file__, 0, message, None, None)
    return JsonFormatter().format(record)


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


HELD_LINES = 10_000
"""Lines :func:`hold_lines` keeps at most; past that it writes them, and every later one, as they come."""


class _Held(logging.Handler):
    def __init__(self, targets: list[logging.Handler]) -> None:
        super().__init__()
        self.targets = targets
        self.records: list[logging.LogRecord] = []
        self.overflowed = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.overflowed or len(self.records) >= HELD_LINES:
            self.overflowed = True
            self.write()
            _write(record, self.targets)
        else:
            self.records.append(record)

    def write(self) -> None:
        records, self.records = self.records, []
        for record in records:
            _write(record, self.targets)


def _write(record: logging.LogRecord, targets: list[logging.Handler]) -> None:
    for target in targets:
        if record.levelno >= target.level:
            target.handle(record)


def hold_lines() -> Callable[[bool], None]:
    """Hold every log line back from now on; the function returned ends that, writing them (True) or dropping
    them (False).

    A process holds its start-up's lines until it knows it can start: when it cannot (a port in use, a symbol no
    venue lists), its one error line is all the user reads, not the last of lines it proves wrong ("gRPC serving
    ... port 5002", "serving the consolidated NOSUCHPAIR book"). Lines keep their own time stamps."""
    root = logging.getLogger()
    targets = root.handlers[:]
    held = _Held(targets)
    root.handlers[:] = [held]

    def release(write: bool) -> None:
        if root.handlers == [held]:
            root.handlers[:] = targets
        if write:
            held.write()
        held.records.clear()

    return release


class LogThrottle:
    """At most one log line per key per interval, so a venue spewing bad frames cannot flood the log."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: do not log. Otherwise log, mentioning the returned count of lines suppressed since the last one."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)

    def log(self, logger: logging.Logger, level: int, key: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless a line for ``key`` went out within the interval, followed by how many times
        it happened since the last such line (this one included)."""
        suppressed = self.allow(key)
        if suppressed is not None:
            logger.log(level, message + " (%d since the last such line; at most one a %gs)",
                       *args, suppressed + 1, self._interval)
