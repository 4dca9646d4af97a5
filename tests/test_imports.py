"""Imports point one way: no module of bench/ or variants/ imports, at module level or inside a function,
a module that imports it back, and no subpackage (bench/metrics/, bench/report/...) imports a module that
imports the subpackage back. A cycle means two jobs are tangled, or a command sits below what it calls."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGES = ("bench", "variants")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that `name` imports anywhere in its file; `from a import b` names a.b when b is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            subs = {f"{base}.{alias.name}" for alias in node.names}
            out |= {s for s in subs if s in modules} or {base}
    return {m for m in out if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) through each group of mutually importing modules."""
    found, done = [], set()
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    if not set(path) & done:
                        found.append(path + [start])
                        done |= set(path)
                    stack = []
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    assert "bench.train.loop" in graph and "bench.store.checkpoint" in graph["bench.train.loop"]  # the graph is read at all
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_subpackages_are_layers_too():
    """A subpackage counts as one module: bench eval's command inside bench/metrics/ would make
    bench.metrics -> bench.metrics.evaluator -> bench.metrics, though no single file imports itself back."""
    modules = _modules()
    layer = {name: ".".join(name.split(".")[:2]) for name in modules}
    graph: dict[str, set[str]] = {node: set() for node in layer.values()}
    for name, path in modules.items():
        graph[layer[name]] |= {layer[m] for m in _imported(name, path, modules)} - {layer[name]}
    cycles = _cycles(graph)
    assert not cycles, "import cycles between subpackages:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_names_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
