"""The optimizer and learning-rate schedule, GLaM's by default.

Adafactor as the paper trains: no momentum, factored second moments, second-moment decay
beta2_t = min(beta2_cap, 1 - t^-decay_rate) (optax's own schedule has no cap, hence `decay_rate_fn`), update
clipping at RMS 1.0, updates relative to the parameter scale. Learning rate constant for `constant_steps`, then
lr * sqrt(constant_steps / t). AdamW is the alternative. `state_specs` maps parameter partition specs onto
the optimizer state, so the state shards exactly like the parameters it belongs to.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec

from data_specs.specs import OptimizerSpec


def make_schedule(spec: OptimizerSpec, total_steps: int) -> optax.Schedule:
    """Learning rate at optimizer step `count` (0-based; the paper's t = count + 1)."""
    lr, warmup, constant = spec.learning_rate, spec.warmup_steps, max(1, spec.constant_steps)

    def schedule(count: jax.Array) -> jax.Array:
        t = jnp.asarray(count, jnp.float32) + 1.0
        if spec.schedule == "rsqrt":
            value = lr * jnp.sqrt(constant / jnp.maximum(t, constant))
        elif spec.schedule == "cosine":
            frac = jnp.clip((t - constant) / max(1, total_steps - constant), 0.0, 1.0)
            value = jnp.where(t <= constant, lr, lr * 0.5 * (1 + jnp.cos(jnp.pi * frac)))
        else:
            value = jnp.asarray(lr, jnp.float32)
        if warmup:
            value = value * jnp.minimum(1.0, t / warmup)
        return value

    return schedule


def beta2_schedule(cap: float) -> Any:
    """Adafactor's second-moment decay 1 - t^-rate (t = step + 1), capped (GLaM: 0.99)."""

    def decay(step: jax.Array, rate: float) -> jax.Array:
        t = jnp.asarray(step + 1, jnp.float32)
        return jnp.minimum(cap, 1.0 - t ** (-rate))

    return decay


def make_optimizer(spec: OptimizerSpec, total_steps: int) -> optax.GradientTransformation:
    schedule = make_schedule(spec, total_steps)
    chain: list[optax.GradientTransformation] = []
    if spec.max_grad_norm is not None:
        chain.append(optax.clip_by_global_norm(spec.max_grad_norm))
    if spec.kind == "adafactor":
        chain.append(optax.scale_by_factored_rms(
            factored=spec.factored, decay_rate=spec.decay_rate, min_dim_size_to_factor=128, epsilon=1e-30,
            decay_rate_fn=beta2_schedule(spec.beta2_cap)))
        if spec.clipping_threshold:
            chain.append(optax.clip_by_block_rms(spec.clipping_threshold))
        chain.append(optax.scale_by_learning_rate(schedule, flip_sign=False))
        if spec.multiply_by_parameter_scale:
            chain.append(optax.scale_by_param_block_rms())
        if spec.momentum:
            chain.append(optax.ema(spec.momentum, debias=False))
        if spec.weight_decay:
            chain.append(optax.add_decayed_weights(spec.weight_decay * spec.learning_rate))
        chain.append(optax.scale(-1.0))
        return optax.chain(*chain)
    chain.append(optax.adamw(schedule, b1=spec.adam_b1, b2=spec.adam_b2, weight_decay=spec.weight_decay))
    return optax.chain(*chain)


def state_specs(tx: optax.GradientTransformation, opt_state: Any, params: Any, param_specs: Any) -> Any:
    """PartitionSpecs for `opt_state` (abstract or concrete) given the parameters' specs.

    A leaf shaped like its parameter takes the parameter's spec; a factored Adafactor statistic (the parameter
    with one dim reduced away) takes the spec with that dim dropped; counts and placeholders are replicated.
    """

    def leaf_spec(leaf: Any, param: Any, spec: PartitionSpec) -> PartitionSpec:
        shape, pshape = tuple(leaf.shape), tuple(param.shape)
        dims = list(spec) + [None] * (len(pshape) - len(spec))
        if shape == pshape:
            return spec
        if len(shape) == len(pshape) - 1:
            for d in np.argsort(pshape)[::-1]:  # the reduced dim is one of the two largest
                if shape == pshape[:d] + pshape[d + 1 :]:
                    return PartitionSpec(*(dims[:d] + dims[d + 1 :]))
        return PartitionSpec()

    return optax.tree_map_params(tx, leaf_spec, opt_state, params, param_specs,
                                 transform_non_params=lambda _: PartitionSpec())
