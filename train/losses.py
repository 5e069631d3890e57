"""The training objective: token cross-entropy plus GLaM's auxiliary terms.

total = CE + load_balance x lb_loss + router_z x router z-loss + logit_z x mean(logsumexp(logits)^2).
Sums, not means, come back for the token terms, so gradient accumulation can divide by the token count of the
whole batch and give exactly the loss of one large step.

The token terms come from the model's final states in sequence chunks (`chunked_token_terms`): float32 logits
[b, chunk, V] exist for one chunk at a time, and the backward pass recomputes them chunk by chunk, so a 256K
vocabulary never costs b x t x V x 4 bytes (17 GB per device at GLaM's shapes), gradient included.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from data_specs.specs import LossSpec


def token_terms(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-token cross-entropy and logsumexp^2 (float32 [b, t]), zero where the weight is zero."""
    logits = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    ce = (lse - target_logit) * weights
    return ce, jnp.square(lse) * weights


def chunked_token_terms(hidden: jax.Array, logits_fn: Callable[[jax.Array], jax.Array], targets: jax.Array,
                        weights: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array]:
    """token_terms of logits_fn(hidden) ([b, t, M] -> [b, t, V]), computed `chunk` positions at a time.

    A scan over sequence chunks with a rematerialised body: its forward keeps only each chunk's two [b, chunk]
    results, its backward recomputes the chunk's logits. Chunks run along the sequence, so the batch dim keeps
    its sharding.
    """
    b, t = hidden.shape[:2]
    n = -(-t // chunk)
    pad = n * chunk - t
    if pad:  # weight 0: padded positions add nothing
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        targets, weights = jnp.pad(targets, ((0, 0), (0, pad))), jnp.pad(weights, ((0, 0), (0, pad)))
    split = lambda x: jnp.moveaxis(x.reshape(b, n, chunk, *x.shape[2:]), 1, 0)  # noqa: E731

    def body(_: None, xs: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[None, tuple[jax.Array, jax.Array]]:
        h, tgt, w = xs
        return None, token_terms(logits_fn(h), tgt, w)

    body = jax.checkpoint(body, prevent_cse=False)
    _, (ce, lse2) = jax.lax.scan(body, None, (split(hidden), split(targets), split(weights)))
    join = lambda x: jnp.moveaxis(x, 0, 1).reshape(b, n * chunk)[:, :t]  # noqa: E731
    return join(ce), join(lse2)


def objective(ce: jax.Array, lse2: jax.Array, aux: dict[str, jax.Array], spec: LossSpec, num_tokens: jax.Array,
              aux_scale: float = 1.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The loss to differentiate for one (micro-)batch, and its parts, from its per-token terms (token_terms).

    Token terms are divided by `num_tokens` (the whole step's weighted token count); the router losses, which
    the model already averages, are multiplied by `aux_scale` (1 / micro-batches).
    """
    denom = jnp.maximum(num_tokens, 1.0)
    parts = {
        "ce": ce.sum() / denom,
        "logit_z": lse2.sum() / denom,
        "lb": aux["lb_loss"] * aux_scale,
        "router_z": aux["z_loss"] * aux_scale,
    }
    total = (parts["ce"] + spec.load_balance * parts["lb"] + spec.router_z * parts["router_z"]
             + spec.logit_z * parts["logit_z"])
    return total, parts


def per_component(ce: jax.Array, components: jax.Array, num_components: int) -> tuple[jax.Array, jax.Array]:
    """Summed cross-entropy and token counts per mixture component (ids < 0 are ignored)."""
    ids = jnp.where(components >= 0, components, num_components).reshape(-1)
    sums = jax.ops.segment_sum(ce.reshape(-1), ids, num_segments=num_components + 1)
    counts = jax.ops.segment_sum((components >= 0).reshape(-1).astype(jnp.float32), ids,
                                 num_segments=num_components + 1)
    return sums[:num_components], counts[:num_components]
