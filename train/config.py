"""Train spec loading and the model config it implies. Imports no JAX."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from data_specs.errors import GlamkitError
from data_specs.hashing import hash_value
from data_specs.loader import load_spec, to_plain
from data_specs.specs import TrainSpec, spec_path
from model.config import ModelConfig
from model.presets import get_config


def load_train_spec(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainSpec:
    """A train spec by name (data_specs/train/<name>.yaml) or path, with dotted `--set` overrides."""
    spec = load_spec(TrainSpec, spec_path("train", name_or_path), overrides)
    check_spec(spec)
    return spec


def check_spec(spec: TrainSpec) -> None:
    if spec.batch_size < 1 or spec.steps < 0 or spec.seq_len < 2 or spec.grad_accum < 1:
        raise GlamkitError("train spec: batch_size, grad_accum >= 1, seq_len >= 2 and steps >= 0 are required")
    if spec.batch_size % spec.grad_accum:
        raise GlamkitError(f"batch_size {spec.batch_size} is not divisible by grad_accum {spec.grad_accum}")
    if spec.checkpoint.every < 1 or spec.checkpoint.keep < 1 or spec.log_every < 1 or spec.eval_every < 1:
        raise GlamkitError("checkpoint.every, checkpoint.keep, log_every and eval_every must be >= 1")


def model_config(spec: TrainSpec) -> ModelConfig:
    """The preset with the spec's overrides; `activation_dtype` sets the compute dtype."""
    overrides = {"dtype": spec.activation_dtype, **dict(spec.model_overrides)}
    try:
        return get_config(spec.model, **overrides)
    except (ValueError, TypeError) as exc:
        raise GlamkitError(f"train spec {spec.name!r}: model: {exc}") from None


def resolved_yaml(spec: TrainSpec, shards: str | Path | None = None) -> str:
    """The resolved config (defaults filled in) as saved in the run: what actually trained."""
    plain = to_plain(dataclasses.replace(spec, shards=str(shards) if shards else spec.shards))
    return yaml.safe_dump(plain, sort_keys=False)


TRAJECTORY_KEYS = ("model", "model_overrides", "batch_size", "seq_len", "grad_accum", "seed", "optimizer", "loss",
                   "activation_dtype", "skip_nonfinite")


def spec_hash(spec: TrainSpec) -> str:
    """Hash of the settings a checkpoint must agree with to be resumed. Steps, intervals, mesh and paths may
    change between runs (train longer, reshard onto another mesh)."""
    plain = to_plain(spec)
    return hash_value({k: plain[k] for k in TRAJECTORY_KEYS})
