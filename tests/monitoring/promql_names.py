"""The metric names a PromQL expression (or a Grafana query with ``$variables``) selects.

A small tokenizer rather than a full parser: it only has to tell metric names apart from functions,
keywords, label names in grouping clauses, strings, label matchers, durations and Grafana variables, which
is enough for the expressions of a dashboard and of alerting rules. Syntax is checked by promtool elsewhere.
"""

from __future__ import annotations

import re

_TOKENS = re.compile(
    r"""
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<variable>\$\{[^}]*\}|\$\w+)
    | (?P<matchers>\{[^}]*\})
    | (?P<range>\[[^\]]*\])
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {*_GROUPING, "and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    tokens = [(m.lastgroup, m.group()) for m in _TOKENS.finditer(expr) if m.lastgroup != "space"]
    names: set[str] = set()
    skip_parens = False
    depth_to_skip: int | None = None
    depth = 0
    for index, (kind, text) in enumerate(tokens):
        if kind == "other" and text == "(":
            depth += 1
            if skip_parens:
                depth_to_skip, skip_parens = depth, False
            continue
        if kind == "other" and text == ")":
            if depth == depth_to_skip:
                depth_to_skip = None
            depth -= 1
            continue
        skip_parens = False
        if kind != "ident" or depth_to_skip is not None:
            continue
        if text.lower() in _KEYWORDS:
            skip_parens = text.lower() in _GROUPING
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if following == ("other", "(") or following[1].lower() in ("by", "without"):
            continue  # a function, or an aggregation (its grouping may come first: sum by (x) (...))
        names.add(text)
    return names
