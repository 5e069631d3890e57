"""Causal multi-head self-attention with a per-layer T5-style relative position bias.

GLaM has no absolute position embeddings: each layer learns a bias per (head, distance bucket), with exact
buckets for short distances and log-spaced ones up to `relpos_max_distance` (unidirectional: only keys at or
before the query matter). With segment ids, a token attends only within its own document, so packed sequences
behave like separate ones. Within a document the distance between two tokens is their distance in the row,
wherever the document starts, so one [heads, t, t] bias per layer, from token order, serves every row of a
packed batch once the segment mask applies (a per-row [b, t, t, heads] table from restarted positions would
hold the same values where the mask lets attention through, at b times the memory).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from model.config import ModelConfig
from model.layers import fan_in_init, param
from model.sharding import constrain


def relative_buckets(query_pos: jax.Array, key_pos: jax.Array, num_buckets: int = 32,
                     max_distance: int = 128) -> jax.Array:
    """T5 unidirectional bucket of distance (query - key), clipped at 0; shape [..., q, k]."""
    distance = jnp.maximum(query_pos[..., :, None] - key_pos[..., None, :], 0)
    exact = num_buckets // 2
    log_ratio = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / exact) / math.log(max_distance / exact)
    large = exact + (log_ratio * (num_buckets - exact)).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return jnp.where(distance < exact, distance, large).astype(jnp.int32)


def attention_mask(segment_ids: jax.Array | None, length: int) -> jax.Array:
    """Boolean [b or 1, 1, q, k]: causal by token order, and same-document when segment ids are given."""
    idx = jnp.arange(length)
    mask = (idx[:, None] >= idx[None, :])[None, None]
    if segment_ids is not None:
        mask = mask & (segment_ids[:, None, :, None] == segment_ids[:, None, None, :])
    return mask


class Attention(nnx.Module):
    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        m, h, d, pd = config.embed_dim, config.num_heads, config.head_dim, config.param_dtype
        qkv_init = fan_in_init(0, (1, 2))
        self.wq = param(rngs, qkv_init, (m, h, d), ("embed", "heads", "kv"), pd)
        self.wk = param(rngs, qkv_init, (m, h, d), ("embed", "heads", "kv"), pd)
        self.wv = param(rngs, qkv_init, (m, h, d), ("embed", "heads", "kv"), pd)
        self.wo = param(rngs, fan_in_init((0, 1), 2), (h, d, m), ("heads", "kv", "embed"), pd)
        self.relpos = param(rngs, jax.nn.initializers.normal(0.1), (config.relpos_buckets, h),
                            ("buckets", "heads"), pd)
        self.config = config

    def __call__(self, x: jax.Array, buckets: jax.Array, mask: jax.Array) -> jax.Array:
        """x [b, t, m]; buckets int [t, t] (relative_buckets of token order); mask bool [b or 1, 1, t, t]."""
        dt, rules = self.config.dtype, self.config.rules
        names = ("batch", "length", "heads", "kv")
        q = constrain(jnp.einsum("btm,mhd->bthd", x, self.wq[...].astype(dt)), names, rules)
        k = constrain(jnp.einsum("btm,mhd->bthd", x, self.wk[...].astype(dt)), names, rules)
        v = constrain(jnp.einsum("btm,mhd->bthd", x, self.wv[...].astype(dt)), names, rules)
        q = q * jnp.asarray(self.config.head_dim ** -0.5, dt)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
        bias = jnp.take(self.relpos[...].astype(jnp.float32), buckets, axis=0)  # [q, k, h]
        logits = logits + jnp.moveaxis(bias, -1, 0)[None]
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(logits, axis=-1).astype(dt)  # the diagonal is never masked: no empty rows
        out = constrain(jnp.einsum("bhqk,bkhd->bqhd", probs, v), names, rules)
        y = jnp.einsum("bthd,hdm->btm", out, self.wo[...].astype(dt))
        return constrain(y, ("batch", "length", "embed"), rules)
