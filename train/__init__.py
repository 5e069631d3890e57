"""Training: shard streaming, Adafactor, the loop, Orbax checkpoints, device meshes. Never imports Beam.

Light on import (no JAX until a name below is used):

    from train import Trainer, load_train_spec
    summary = Trainer(load_train_spec("tiny"), run_dir="runs/x/train", shards_dir="runs/x/shards").run()
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Trainer": "train.loop",
    "load_train_spec": "train.config",
    "train_stage": "train.stage",
    "make_optimizer": "train.optim",
    "make_schedule": "train.optim",
    "ShardSplit": "train.data",
    "BatchStream": "train.data",
    "Checkpointer": "train.checkpoint",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'train' has no attribute {name!r}")
