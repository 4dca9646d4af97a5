"""Names to classes for variants, datasets and metrics.

Names end up in run ids, folder names and report columns, so they are validated once here:
lower-case, no path separators, never registered twice. `bench/` learns which variants exist only
through this module, which imports each kind's plugin module on first lookup.
"""

from __future__ import annotations

import importlib
import re
from typing import Callable, TypeVar

from bench.errors import BenchError

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry:
    """A name -> entry table for one kind of thing (variant, dataset, metric)."""

    def __init__(self, kind: str, plugins: str):
        self.kind = kind
        self.plugins = plugins  # the module whose import registers every entry, loaded on first lookup
        self._loaded = False
        self._entries: dict[str, object] = {}
        self._aliases: dict[str, tuple[str, ...]] = {}

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

    def alias(self, name: str, *targets: str) -> None:
        """Another name users already know (torch-fidelity's `fid`, `isc`): it stands for the first
        of `targets` that fits the run (see `candidates`). A registered name may be an alias too
        (`kid` falls back to the Inception KID on natural images)."""
        if not _NAME.match(name) or name in self._aliases:
            raise ValueError(f"{self.kind} alias {name!r} is not a clean new name")
        self._aliases[name] = targets

    def candidates(self, name: str) -> tuple[str, ...]:
        """The registered names `name` stands for: itself, or an alias's targets in order."""
        self.load_plugins()
        if name in self._aliases:
            return self._aliases[name]
        if name in self._entries:
            return (name,)
        extra = sorted(set(self._aliases) - set(self._entries))
        aliases = f" (aliases: {', '.join(extra)})" if extra else ""
        raise BenchError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}{aliases}")

    def get(self, name: str):
        return self._entries[self.candidates(name)[0]]

    def aliases(self) -> dict[str, tuple[str, ...]]:
        """Declared in this module, so listing them loads no plugin (`bench eval --help` stays free of torch)."""
        return dict(self._aliases)

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def load_plugins(self) -> None:
        """Import the plugin module once, so a fresh interpreter (a notebook, a new command) sees every
        entry without knowing which module registers them."""
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self.plugins)


variants = Registry("variant", "variants")
datasets = Registry("dataset", "bench.datasets.registered")
metrics = Registry("metric", "bench.metrics.families")
# torch-fidelity's names: FID is `fd` on built-in data (domain features), `inception` on natural images.
metrics.alias("fid", "fd", "inception")
metrics.alias("isc", "inception")
metrics.alias("is", "inception")
metrics.alias("kid", "kid", "inception")
metrics.alias("prc", "prc", "vgg_prc")
metrics.alias("density_coverage", "density_coverage", "vgg_density_coverage")
