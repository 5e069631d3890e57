"""The training objective: token cross-entropy plus GLaM's auxiliary terms.

total = CE + load_balance x lb_loss + router_z x router z-loss + logit_z x mean(logsumexp(logits)^2).
Sums, not means, come back for the token terms, so gradient accumulation can divide by the token count of the
whole batch and give exactly the loss of one large step.
"""

from __future__ import annotations

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


def objective(logits: jax.Array, aux: dict[str, jax.Array], batch: dict[str, jax.Array], spec: LossSpec,
              num_tokens: jax.Array, aux_scale: float = 1.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The loss to differentiate for one (micro-)batch, and its parts.

    Token terms are divided by `num_tokens` (the whole step's weighted token count); the router losses, which
    the model already averages, are multiplied by `aux_scale` (1 / micro-batches).
    """
    ce, lse2 = token_terms(logits, batch["targets"], batch["weights"])
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
