"""Load a trained checkpoint (the `train` stage's folder) as a scoring function for the harness."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from data_specs.errors import GlamkitError
from data_specs.loader import load_spec
from data_specs.specs import TrainSpec


def checkpoint_dir(train_dir: Path) -> Path:
    """The train stage's final `checkpoint/`, or the newest committed step of a `glamkit train` run folder."""
    if (train_dir / "checkpoint").is_dir():
        return train_dir / "checkpoint"
    from train.checkpoint import RECORD

    steps = sorted((int(p.name), p) for p in (train_dir / "checkpoints").glob("[0-9]*") if (p / RECORD).exists())
    if not steps:
        raise GlamkitError(f"{train_dir}: no committed checkpoint (checkpoint/ or checkpoints/<step>/)")
    return steps[-1][1]


def load_trained(train_dir: str | Path) -> tuple[Any, Any, TrainSpec]:
    """(forward(params, tokens) -> logits, params, train spec) from RUN/train/.

    For scoring, expert capacity is raised so no token is dropped: with drops, GShard routing lets a later token
    take an earlier token's slot, and log-likelihoods would depend on what follows (see model/moe.py).
    """
    import jax
    import orbax.checkpoint as ocp
    from flax import nnx

    from model import Transformer
    from train.config import model_config

    train_dir = Path(train_dir)
    if not (train_dir / "config.yaml").exists():
        raise GlamkitError(f"{train_dir}: no trained model here (config.yaml missing): run the train stage first")
    spec = load_spec(TrainSpec, train_dir / "config.yaml")
    config = model_config(spec)
    if config.num_experts:
        k = min(config.top_k, config.num_experts)
        config = dataclasses.replace(config, capacity_factor=max(config.capacity_factor,
                                                                 math.ceil(config.num_experts / k)))
    config = dataclasses.replace(config, dtype="float32")
    abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    restored = ocp.StandardCheckpointer().restore((checkpoint_dir(train_dir) / "state").absolute())
    nnx.replace_by_pure_dict(state, jax.tree.map(jax.numpy.asarray, restored["params"]))

    def forward(params: Any, tokens: Any) -> Any:
        return nnx.merge(graphdef, params)(tokens)[0]

    return forward, state, spec
