"""Shared helpers for the model tests: very small float32 configs so every check is exact and fast."""

from __future__ import annotations

import jax
import pytest
from flax import nnx

from model.config import ModelConfig


def small_config(**overrides) -> ModelConfig:
    base = dict(vocab_size=64, num_layers=2, embed_dim=32, mlp_dim=64, num_heads=2, head_dim=16,
                dtype="float32", relpos_buckets=8, relpos_max_distance=16)
    base.update(overrides)
    return ModelConfig(**base)


@pytest.fixture
def make_config():
    return small_config


def _jit_forward(model):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda tokens, **kw: nnx.merge(graphdef, state)(tokens, **kw))


@pytest.fixture
def jit_forward():
    """model -> its forward as a jitted function of (tokens, **kw): eager op-by-op is slow on CPU."""
    return _jit_forward
