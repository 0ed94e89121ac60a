"""A network address, ``HOST:PORT``, parsed and checked once where it enters (a flag, an environment variable, a
serving process's command line): everything past that boundary takes an :class:`Address` and never parses again."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HOST = re.compile(r"\[(?P<bracketed>[0-9A-Fa-f:.]+)\]|(?P<plain>[A-Za-z0-9.:-]+)", re.ASCII)
"""A name, an IPv4 address or an IPv6 one (``[::1]``, or bare when unambiguous: ``::1:5002`` is ::1 port 5002)."""


class BadAddress(ValueError):
    """Not ``HOST:PORT``, or a port out of range; the message says which, for the user."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, min_port: int = 0) -> Address:
        """``HOST:PORT`` (``[::1]:5002`` for IPv6); raises :class:`BadAddress`. ``min_port``: 1 where port 0 (any
        free port) makes no sense, as for a server to connect to."""
        host, sep, port = text.rpartition(":")
        match = _HOST.fullmatch(host)
        if not sep or match is None or not port.isdigit():
            raise BadAddress(f"expected HOST:PORT, got {text!r}")
        if not min_port <= int(port) <= 65535:
            raise BadAddress(f"the port must be {min_port}-65535, got {text!r}")
        return cls(match["bracketed"] or match["plain"], int(port))
