"""Datasets as cached uint8 tensors plus a DataSpec: the base classes and device placement (core.py,
base.py), decoding and caching (decode.py, cache.py), downloads (fetch.py), one module per dataset
family. registered.py imports them all; the registry does so on first lookup."""
