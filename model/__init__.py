"""The GLaM model: a decoder-only Transformer with GShard MoE layers, in Flax NNX.

Light on import: config and presets are pure Python; the jax-backed pieces load on first attribute access.

    from model import Transformer, get_config
    model = Transformer(get_config("tiny-moe"), rngs=nnx.Rngs(0))
    logits, aux = model(tokens)
"""

from __future__ import annotations

import importlib
from typing import Any

from model.config import ModelConfig
from model.presets import PRESETS, get_config

_LAZY = {
    "Transformer": "model.transformer",
    "model_info": "model.info",
    "create_sharded_model": "model.transformer",
    "shard_model": "model.sharding",
    "make_mesh": "model.sharding",
}

__all__ = ["ModelConfig", "PRESETS", "get_config", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
