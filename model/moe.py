"""GShard top-2 Mixture-of-Experts layer with two interchangeable dispatch implementations.

Semantics (GShard / GLaM):
- Tokens are split into `G` groups of `S` consecutive tokens; G is a config value, never the device count, so
  routing (and the result) is the same on any mesh. Each expert holds C = ceil(capacity_factor * S * k / E)
  slots per group, k = min(2, E).
- A float32 softmax router picks each token's top-1 and top-2 experts; the two gates are renormalised to sum
  to one (with k = 1 the gate is the raw probability, as in Switch). The second expert is always dispatched.
- Slots are filled first choices first (in token order), then second choices. An assignment past its
  expert's capacity is dropped: its share of the MoE output is zero and the residual carries the token.
- Losses come back unweighted: GShard's load-balancing loss E^2 * mean_e(top1_fraction_e * mean_prob_e)
  (1.0 under uniform routing, larger with imbalance) and the router z-loss mean(logsumexp(logits)^2).

Dispatch "einsum" builds GShard's one-hot [G, S, E, C] dispatch/combine tensors and moves tokens with einsums
(simple and what GSPMD partitions best, but O(S * E * C) memory and FLOPs). Dispatch "sort" sorts assignments
by expert and moves tokens with gathers, never materialising a tokens x experts x capacity tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from model.config import ModelConfig
from model.layers import fan_in_init, param
from model.sharding import Rules, constrain

ExpertFn = Callable[[jax.Array], jax.Array]  # [E, G, C, M] -> [E, G, C, M]


def route(logits: jax.Array, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top-k routing from float32 logits [G, S, E] -> experts [G, S, k] int, gates [G, S, k], probs."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    first = jnp.argmax(probs, axis=-1)
    gate1 = jnp.take_along_axis(probs, first[..., None], axis=-1)[..., 0]
    if k == 1:
        return first[..., None].astype(jnp.int32), gate1[..., None], probs
    rest = jnp.where(jax.nn.one_hot(first, probs.shape[-1], dtype=jnp.bool_), -1.0, probs)
    second = jnp.argmax(rest, axis=-1)
    gate2 = jnp.take_along_axis(probs, second[..., None], axis=-1)[..., 0]
    gates = jnp.stack([gate1, gate2], axis=-1)
    gates = gates / jnp.maximum(gates.sum(-1, keepdims=True), jnp.finfo(jnp.float32).tiny)
    return jnp.stack([first, second], axis=-1).astype(jnp.int32), gates, probs


def einsum_dispatch(x: jax.Array, experts: jax.Array, gates: jax.Array, num_experts: int, capacity: int,
                    expert_fn: ExpertFn, rules: Rules) -> tuple[jax.Array, jax.Array]:
    """GShard one-hot dispatch. x [G, S, M] -> (y [G, S, M], kept [G, S, k])."""
    combine = jnp.zeros((*x.shape[:2], num_experts, capacity), jnp.float32)
    dispatch = jnp.zeros(combine.shape, jnp.bool_)
    filled = jnp.zeros((x.shape[0], 1, num_experts), jnp.int32)  # slots taken by earlier choices
    kept = []
    for j in range(experts.shape[-1]):  # first choices fill slots before second choices
        onehot = jax.nn.one_hot(experts[..., j], num_experts, dtype=jnp.int32)  # [G, S, E]
        position = jnp.cumsum(onehot, axis=1) - 1 + filled
        keep = onehot * (position < capacity)
        filled = filled + keep.sum(axis=1, keepdims=True)
        slot = jax.nn.one_hot((position * onehot).sum(-1), capacity, dtype=jnp.bool_)  # [G, S, C]
        route_j = keep.astype(jnp.bool_)[..., None] & slot[:, :, None, :]  # [G, S, E, C]
        dispatch = dispatch | route_j
        combine = combine + gates[..., j, None, None] * route_j
        kept.append(keep.sum(-1) > 0)
    expert_in = jnp.einsum("gsec,gsm->egcm", dispatch.astype(x.dtype), x)
    expert_out = expert_fn(constrain(expert_in, ("expert", "expert_group", None, "embed"), rules))
    y = jnp.einsum("gsec,egcm->gsm", combine.astype(x.dtype), expert_out)
    return y, jnp.stack(kept, axis=-1)


def _sort_group(experts: jax.Array, num_experts: int, capacity: int) -> tuple[jax.Array, jax.Array]:
    """One group's slot plan from experts [S, k] -> (token per slot [E, C], slot per assignment [S, k]).

    Empty slots point at token S and dropped assignments at slot E*C: both index an appended zero row.
    """
    s, k = experts.shape
    flat = experts.T.reshape(-1)  # choice-major: all first choices, then all second choices
    token = jnp.tile(jnp.arange(s, dtype=jnp.int32), k)
    order = jnp.argsort(flat, stable=True)  # by expert, keeping choice-then-token priority
    counts = jnp.bincount(flat, length=num_experts)
    starts = jnp.cumsum(counts) - counts
    rank = jnp.zeros_like(flat).at[order].set(jnp.arange(s * k, dtype=jnp.int32) - starts[flat[order]])
    slot = jnp.where(rank < capacity, flat * capacity + rank, num_experts * capacity)
    c = jnp.arange(capacity)
    src = jnp.minimum(starts[:, None] + c[None, :], s * k - 1)
    slot_token = jnp.where(c[None, :] < counts[:, None], token[order][src], s)
    return slot_token, slot.reshape(k, s).T


def sort_dispatch(x: jax.Array, experts: jax.Array, gates: jax.Array, num_experts: int, capacity: int,
                  expert_fn: ExpertFn, rules: Rules) -> tuple[jax.Array, jax.Array]:
    """Sort/gather dispatch, same result as einsum_dispatch. x [G, S, M] -> (y [G, S, M], kept [G, S, k])."""
    g, _, m = x.shape
    slot_token, slot = jax.vmap(lambda e: _sort_group(e, num_experts, capacity))(experts)
    zero_row = jnp.zeros((g, 1, m), x.dtype)
    x_pad = jnp.concatenate([x, zero_row], axis=1)
    expert_in = jax.vmap(lambda xs, idx: xs[idx])(x_pad, slot_token)  # [G, E, C, M]
    expert_in = constrain(jnp.swapaxes(expert_in, 0, 1), ("expert", "expert_group", None, "embed"), rules)
    expert_out = jnp.swapaxes(expert_fn(expert_in), 0, 1).reshape(g, num_experts * capacity, m)
    out_pad = jnp.concatenate([expert_out, zero_row], axis=1)
    picked = jax.vmap(lambda os, idx: os[idx])(out_pad, slot)  # [G, S, k, M]
    y = jnp.einsum("gskm,gsk->gsm", picked, gates.astype(x.dtype))
    return y, slot < num_experts * capacity


def router_aux(logits: jax.Array, probs: jax.Array, experts: jax.Array, kept: jax.Array
               ) -> dict[str, jax.Array]:
    """Losses and statistics of one MoE layer, all float32 scalars except expert_load [E]."""
    e = probs.shape[-1]
    top1 = jax.nn.one_hot(experts[..., 0], e, dtype=jnp.float32).mean(axis=1)  # [G, E]
    lb_loss = jnp.mean(top1 * probs.mean(axis=1)) * e * e
    z_loss = jnp.mean(jax.nn.logsumexp(logits, axis=-1) ** 2)
    entropy = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(probs), 0.0), axis=-1).mean()
    return {
        "lb_loss": lb_loss,
        "z_loss": z_loss,
        "expert_load": jax.nn.one_hot(experts, e, dtype=jnp.float32).mean(axis=(0, 1, 2)),  # routed share
        "dropped_fraction": 1.0 - kept.astype(jnp.float32).mean(),  # of (token, choice) assignments
        "dropped_tokens": jnp.mean(~kept.any(-1)),  # tokens that reached no expert at all
        "router_entropy": entropy,
    }


class MoE(nnx.Module):
    """E two-matrix GELU experts behind a top-k router."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        e, m, h, pd = config.num_experts, config.embed_dim, config.expert_dim, config.param_dtype
        self.router = param(rngs, fan_in_init(0, 1), (m, e), ("embed", None), pd)
        self.wi = param(rngs, fan_in_init(1, 2, (0,)), (e, m, h), ("expert", "embed", "mlp"), pd)
        self.wo = param(rngs, fan_in_init(1, 2, (0,)), (e, h, m), ("expert", "mlp", "embed"), pd)
        self.config = config

    def experts(self, x: jax.Array) -> jax.Array:
        """[E, G, C, M] -> [E, G, C, M]; each expert is gelu(x Wi) Wo."""
        dt, rules = self.config.dtype, self.config.sharding_rules
        h = jax.nn.gelu(jnp.einsum("egcm,emh->egch", x, self.wi[...].astype(dt)))
        h = constrain(h, ("expert", "expert_group", None, "mlp"), rules)
        y = jnp.einsum("egch,ehm->egcm", h, self.wo[...].astype(dt))
        return constrain(y, ("expert", "expert_group", None, "embed"), rules)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        cfg = self.config
        b, t, m = x.shape
        groups = cfg.groups_for(b * t)
        xg = constrain(x.reshape(groups, b * t // groups, m), ("batch", None, "embed"), cfg.sharding_rules)
        logits = jnp.einsum("gsm,me->gse", xg.astype(jnp.float32), self.router[...].astype(jnp.float32))
        experts, gates, probs = route(logits, cfg.k)
        dispatch = einsum_dispatch if cfg.dispatch == "einsum" else sort_dispatch
        y, kept = dispatch(xg, experts, gates, cfg.num_experts, cfg.capacity(xg.shape[1]), self.experts,
                           cfg.sharding_rules)
        y = constrain(y, ("batch", None, "embed"), cfg.sharding_rules).reshape(b, t, m)
        return y, router_aux(logits, probs, experts, kept)
