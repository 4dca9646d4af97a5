"""Names to classes for variants, datasets and metrics.

Names end up in run ids, folder names and report columns, so they are validated once here:
lower-case, no path separators, never registered twice. `bench/` learns which variants exist only
through this module; the `variants` package registers them when imported.
"""

from __future__ import annotations

import importlib
import re
from typing import Callable, TypeVar

from bench.errors import BenchError

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Packages imported on first lookup so their modules can register themselves.
PLUGIN_PACKAGES = ["variants", "bench.datasets"]


class Registry:
    """A name -> entry table for one kind of thing (variant, dataset, metric)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, object] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if not _NAME.match(name):
            raise ValueError(f"{self.kind} name {name!r} must be lower-case letters, digits and _")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")

        def add(entry: T) -> T:
            self._entries[name] = entry
            entry.name = name  # type: ignore[attr-defined]
            return entry

        return add

    def get(self, name: str):
        load_plugins()
        if name not in self._entries:
            raise BenchError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)


_loaded = False


def load_plugins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for package in PLUGIN_PACKAGES:
            importlib.import_module(package)


variants = Registry("variant")
datasets = Registry("dataset")
metrics = Registry("metric")
