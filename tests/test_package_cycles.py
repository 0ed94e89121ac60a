"""The layers stay visible: no two of orderbook's parts (its subpackages and its top-level modules) import each other,
directly or round a loop. Found from the source (every import, at module level or in a function, but not those only
for type checking), so a new cycle fails here with the imports that close it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "orderbook"


def _part(module: str) -> str | None:
    """The subpackage (``relay``) or top-level module (``config``) a module of orderbook belongs to."""
    names = module.split(".")
    if names[0] != "orderbook" or len(names) < 2:
        return None
    return names[1] if (PACKAGE / names[1]).is_dir() or (PACKAGE / f"{names[1]}.py").exists() else None


def _imports(tree: ast.Module) -> Iterator[str]:
    typing_only = {id(node) for branch in ast.walk(tree)
                   if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
                   for statement in branch.body for node in ast.walk(statement)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)  # from orderbook import process


def import_graph() -> dict[tuple[str, str], set[str]]:
    """(importing part, imported part) -> the imports behind that edge."""
    edges: dict[tuple[str, str], set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        source = _part(module)
        for imported in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            target = _part(imported)
            if source and target and target != source:
                edges.setdefault((source, target), set()).add(f"{module} imports {imported}")
    return edges


def cycles(edges: dict[tuple[str, str], set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one part (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(part: str) -> None:
        index[part] = low[part] = len(index)
        stack.append(part)
        for other in graph[part]:
            if other not in index:
                visit(other)
                low[part] = min(low[part], low[other])
            elif other in stack:
                low[part] = min(low[part], index[other])
        if low[part] == index[part]:
            component = set()
            while (member := stack.pop()) != part:
                component.add(member)
            component.add(part)
            if len(component) > 1:
                found.append(component)

    for part in sorted(graph):
        if part not in index:
            visit(part)
    return found


def test_the_graph_is_read_from_the_source():
    edges = import_graph()
    assert "orderbook.edge imports orderbook.relay.source" in edges["edge", "relay"]
    assert ("relay", "serving") in edges and ("app", "config") in edges


def test_the_cycle_finder_finds_a_loop():
    assert cycles({("a", "b"): set(), ("b", "c"): set(), ("c", "a"): set(), ("c", "d"): set()}) == [{"a", "b", "c"}]


def test_no_part_of_the_package_imports_itself_round_a_loop():
    edges = import_graph()
    report = [f"{', '.join(sorted(component))}: " + "; ".join(
        sorted(why for (source, target), imports in edges.items()
               if source in component and target in component for why in imports))
        for component in cycles(edges)]
    assert report == []
