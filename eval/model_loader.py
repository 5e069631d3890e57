"""Load a trained checkpoint (the `train` stage's folder) as a scoring function for the harness."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from data_specs.errors import GlamkitError
from data_specs.loader import load_spec
from data_specs.specs import TrainSpec
from model.config import ModelConfig
from train.config import model_config


def checkpoint_dir(train_dir: Path) -> Path:
    """The newest step in `checkpoints/` (Orbax's layout) of the train stage's folder or a `glamkit train` run."""
    import orbax.checkpoint as ocp

    folder = (train_dir / "checkpoints").absolute()
    options = ocp.CheckpointManagerOptions(read_only=True)
    steps = ocp.CheckpointManager(folder, options=options).all_steps() if folder.is_dir() else []
    if not steps:
        raise GlamkitError(f"{train_dir}: no committed checkpoint in checkpoints/<step>/ (train first)")
    return folder / str(max(steps))


def scoring_config(config: ModelConfig) -> ModelConfig:
    """The trained model's config for scoring: float32 activations and the dropless dispatch."""
    return dataclasses.replace(config, dtype="float32", dispatch="dropless" if config.is_moe else config.dispatch)


def load_trained(train_dir: str | Path) -> tuple[Any, Any, TrainSpec]:
    """(forward(params, tokens, segment_ids=None) -> logits, params, train spec) from RUN/train/.

    Scoring uses the dropless dispatch, so no token is ever dropped: with capacity drops, GShard routing lets a
    later token take an earlier token's slot, and log-likelihoods would depend on what follows (see model/moe.py).
    """
    import jax
    import orbax.checkpoint as ocp
    from flax import nnx

    from model import Transformer

    train_dir = Path(train_dir)
    if not (train_dir / "config.yaml").exists():
        raise GlamkitError(f"{train_dir}: no trained model here (config.yaml missing): run the train stage first")
    spec = load_spec(TrainSpec, train_dir / "config.yaml")
    config = scoring_config(model_config(spec))
    abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    restored = ocp.StandardCheckpointer().restore((checkpoint_dir(train_dir) / "state").absolute())
    nnx.replace_by_pure_dict(state, jax.tree.map(jax.numpy.asarray, restored["params"]))

    def forward(params: Any, tokens: Any, segment_ids: Any = None) -> Any:
        return nnx.merge(graphdef, params)(tokens, segment_ids)[0]

    return forward, state, spec
