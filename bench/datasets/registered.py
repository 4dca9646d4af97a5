"""Importing this module registers every dataset (bench.registry.datasets does on first lookup)."""

from bench.datasets import builtin  # noqa: F401
from bench.datasets import cartoonset, folders, stanford_dogs, synthetic, torchvision_sets  # noqa: F401
from bench.datasets import mnist_small  # noqa: F401  (after synthetic and torchvision_sets, which it builds on)
