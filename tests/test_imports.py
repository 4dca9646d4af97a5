"""Imports point one way: no module of bench/ or variants/ imports, at module level or inside a function,
a module that imports it back, and every import points down the layer order below (LAYERS), so no
subpackage imports one that imports it back. A cycle means two jobs are tangled, or a command sits below
what it calls."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
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


# The allowed direction: a module may import its own layer or any layer below it, never one above.
# A module takes the layer of the longest entry that prefixes its name. Two modules sit below their
# subpackage on purpose: bench.metrics.facts (the metrics' declarations, plain data that config's
# published-value check and the report read without torch) and bench.train.classifier (the stacked-MNIST
# judge's fit: training code, so it lives in bench/train/, but it imports nothing from bench, and the
# judge in bench/metrics/ calls it, while the loop calls the metrics at its flushes).
LAYERS = [
    ("bench", "bench.errors", "bench.registry", "bench.metrics.facts"),
    ("bench.config",),
    ("bench.store",),
    ("bench.datasets", "bench.variant", "variants", "bench.train.classifier"),
    ("bench.metrics",),
    ("bench.train",),
    ("bench.launch", "bench.study", "bench.speed", "bench.data_command"),
    ("bench.report",),
    ("bench.cli",),
]


def layer_of(name: str) -> int:
    found = [(len(prefix), i) for i, group in enumerate(LAYERS) for prefix in group
             if name == prefix or name.startswith(prefix + ".")]
    return max(found)[1]


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})"
                  for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def test_imports_point_down_the_layers():
    modules = _modules()
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    assert layer_of("bench.metrics.facts") == 0 and layer_of("bench.metrics.suite") == 4
    bad = upward(graph)
    assert not bad, "imports that run up the layers (move what both need down):\n" + "\n".join(bad)


def test_the_layer_check_names_an_upward_import():
    graph = {"bench.store.runs": {"bench.errors", "bench.report.names"}, "bench.cli": {"bench.report.build"}}
    assert upward(graph) == ["bench.store.runs (layer 2) -> bench.report.names (layer 7)"]


def test_no_module_imports_another_modules_private_name():
    modules, found = _modules(), []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
                found += [f"{name}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "\n".join(found)


def test_the_cycle_finder_names_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_every_registry_is_full_in_a_fresh_interpreter():
    """A notebook or a new command that asks the registry first sees every entry: each registry imports
    its plugin module on first lookup, so no caller imports a module "to register" anything."""
    code = ("from bench import registry\n"
            "for names in (registry.variants.names(), registry.datasets.names(), registry.metrics.names()):\n"
            "    print(names)\n"
            "print(repr(registry.metrics.get('fid').name))")
    lines = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.splitlines()
    variants, datasets, metrics, fid = (ast.literal_eval(line) for line in lines)
    assert {"dcgan", "wgan_gp", "mlp_gan"} <= set(variants)
    assert {"ring8", "digits", "stacked_mnist5k"} <= set(datasets)
    assert {"mode_scores", "fd", "inception", "probe"} <= set(metrics) and fid == "fd"


def test_no_caller_imports_a_module_to_register_something():
    found = [str(path.relative_to(REPO)) for folder in ("bench", "tests", "tools")
             for path in sorted((REPO / folder).rglob("*.py"))
             if "(registers the" in path.read_text() and path.name != "test_imports.py"]
    assert not found
