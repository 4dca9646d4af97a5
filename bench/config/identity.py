"""Run identity: which keys of a resolved config name what a run computes, and the ids made of them.

A run id is 12 hex chars of SHA-256 over the canonical JSON of the resolved config (keys sorted),
leaving out the keys that only say where or how fast a run executes. A configuration id is the
same without the seed: runs that share it are the seeds the report pools. Data that lives in files
enters the id by its content fingerprint (`data_identity`), never by its path, so the same images
in another folder keep their runs and different images under one path get new ones
(docs/protocols.md §11).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Keys that say where or how fast a run executes, not what it computes: left out of the run id.
NOT_HASHED = frozenset({"device", "data.root", "compile", "fused_optim", "log_tensorboard"})
# Also left out of a configuration id: the seed names a sample of the configuration, not the method.
NOT_CONFIG = frozenset({"seed", *NOT_HASHED})
DATA_IDENTITY = "data_identity"  # content fingerprint of file datasets; absent for built-in data
# Options added after runs existed, hashed only when set away from their off value, so every run from
# before they existed keeps its id (they are still written to config.yaml).
HASHED_WHEN_ON = {"spectral_norm_d": False, "spectral_norm_g": False, "augment": None, "loss": "bce",
                  "orthogonal_gain": None, "g_objective": "non_saturating", "pac": 1}


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _hashed(flat: dict[str, Any], left_out: frozenset) -> dict[str, Any]:
    return {k: v for k, v in flat.items()
            if k not in left_out and not (k in HASHED_WHEN_ON and v == HASHED_WHEN_ON[k])}


def run_id(flat: dict[str, Any]) -> str:
    """12 hex chars of SHA-256 over the canonical JSON of the resolved config (keys sorted)."""
    text = _canon(_hashed(flat, NOT_HASHED))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_id(flat: dict[str, Any]) -> str:
    """10 hex chars over the config without its seed: runs that share it are seeds of one configuration."""
    text = json.dumps(_hashed(flat, NOT_CONFIG), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]
