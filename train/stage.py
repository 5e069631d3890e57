"""The `train` stage of the recipe: train on the mix stage's shards, resumable across kills of `make demo`.

The stage runner gives each attempt a fresh temporary folder, so checkpoints live in a work folder keyed by the
stage key (`RUN/.train-work/<key>/`), which survives a killed attempt; a rerun resumes there. When training
finishes, the deterministic artefacts (config.yaml, metrics.jsonl and the final checkpoint, in Orbax's layout
as `checkpoints/<step>/` so `orbax.checkpoint.CheckpointManager("RUN/train/checkpoints")` reads it) are copied
into the stage folder; wall-clock timings and TensorBoard events go to `RUN/logs/train/`.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path
from typing import Any

from data_specs.errors import GlamkitError
from data_specs.specs import spec_path
from data_specs.stages import Stage, StageArgs, StageContext, make
from train.config import load_train_spec


def train_stage(ctx: StageContext, train_spec_path: str | Path, shards_dir: str | Path | None = None,
                overrides: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Train per the spec on `shards_dir` (default: the upstream `shards` stage); returns the summary (first/last
    loss, validation, ...)."""
    shards_dir = shards_dir if shards_dir is not None else ctx.upstream["shards"]
    from train.loop import Trainer
    from train.mesh import init_distributed

    spec = load_train_spec(train_spec_path, overrides)
    init_distributed()  # a no-op unless the environment describes a multi-host job
    work = ctx.run_dir / ".train-work" / ctx.provenance.get("key", "default")
    summary = Trainer(spec, work, shards_dir, progress=progress).run()
    if summary["interrupted"]:  # never mark a half-trained stage complete; the rerun resumes from `work`
        raise GlamkitError(f"train stopped by SIGTERM at step {summary['steps']}; rerun to resume")
    for name in ("config.yaml", "metrics.jsonl"):
        shutil.copy2(work / name, ctx.out / name)
    final = Path(summary["checkpoints"]) / str(summary["steps"])
    shutil.copytree(final, ctx.out / "checkpoints" / final.name)
    logs = ctx.run_dir / "logs" / "train"
    logs.mkdir(parents=True, exist_ok=True)
    for name in ("timings.jsonl", "tensorboard"):
        src, dst = work / name, logs / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dst)
    shutil.rmtree(work, ignore_errors=True)
    ctx.log.info("train: %d steps, loss %.4f -> %.4f", summary["steps"], summary["first_loss"],
                 summary["last_loss"])
    print(f"train: first loss {summary['first_loss']:.4f}, last loss {summary['last_loss']:.4f} "
          f"({summary['steps']} steps)")
    summary["checkpoint"] = f"checkpoints/{final.name}"
    summary["checkpoints"] = "checkpoints"
    return summary


NAME = "train"
DESCRIPTION = "train the GLaM model on the shards (JAX)"
VERSION = "1"


def make_stage(args: StageArgs) -> Stage:
    """Needs the mix stage (`shards`); the key covers the resolved train spec. Standalone (the study's seeds): trains
    on RUN/shards, fingerprinting its manifest."""
    path = spec_path("train", args.train)
    overrides = dict(args.overrides) or None
    shards = Path(args.run_dir) / "shards"
    run = partial(train_stage, train_spec_path=str(path), shards_dir=shards if args.standalone else None,
                  overrides=overrides)
    return make(NAME, run, load_train_spec(path, overrides), args, needs=("shards",), version=VERSION,
                description=DESCRIPTION, standalone_inputs=(shards / "manifest.json",))
