"""Registered datasets; importing this package registers them all."""

from bench.datasets import builtin  # noqa: F401
