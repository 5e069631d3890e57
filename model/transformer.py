"""The GLaM decoder-only Transformer (Flax NNX).

    model = Transformer(config, rngs=nnx.Rngs(0))
    logits, aux = model(tokens, segment_ids=None, positions=None)
    loss = cross_entropy(logits, targets) + load_balance * aux["lb_loss"] + router_z * aux["z_loss"]

(the weights are the train spec's `loss:` section, data_specs.specs.LossSpec).

Pre-norm blocks (RMSNorm -> attention -> residual, RMSNorm -> feed-forward -> residual); the feed-forward
of every `moe_interval`-th layer is an MoE layer, the rest dense GLU blocks; a final RMSNorm and the tied
embedding produce float32 logits. `aux` sums the losses over MoE layers (GShard adds each layer's loss) and
stacks the per-layer statistics, one row per MoE layer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from model.attention import Attention, attention_mask, relative_buckets
from model.config import ModelConfig
from model.layers import MLP, Embed, RMSNorm
from model.moe import MoE


class Block(nnx.Module):
    def __init__(self, config: ModelConfig, layer: int, *, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(config, rngs=rngs)
        self.attn = Attention(config, rngs=rngs)
        self.ffn_norm = RMSNorm(config, rngs=rngs)
        self.ffn = MoE(config, rngs=rngs) if config.is_moe_layer(layer) else MLP(config, rngs=rngs)

    def __call__(self, x: jax.Array, buckets: jax.Array, mask: jax.Array, valid: jax.Array | None
                 ) -> tuple[jax.Array, dict[str, jax.Array] | None]:
        x = x + self.attn(self.attn_norm(x), buckets, mask)
        if isinstance(self.ffn, MoE):
            y, aux = self.ffn(self.ffn_norm(x), valid)
            return x + y, aux
        return x + self.ffn(self.ffn_norm(x)), None


class Transformer(nnx.Module):
    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embed = Embed(config, rngs=rngs)
        self.blocks = nnx.List([Block(config, i, rngs=rngs) for i in range(config.num_layers)])
        self.final_norm = RMSNorm(config, rngs=rngs)

    def __call__(self, tokens: jax.Array, segment_ids: jax.Array | None = None,
                 positions: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """tokens int [b, t]; segment_ids [b, t] (documents of a packed row); positions [b, t] (restart per
        document; default 0..t-1). Segment id 0 marks padding, which MoE layers leave out of routing.
        Returns float32 logits [b, t, vocab] and the aux dict."""
        cfg = self.config
        t = tokens.shape[1]
        if positions is None:
            positions = jnp.arange(t)[None]
        buckets = relative_buckets(positions, positions, cfg.relpos_buckets, cfg.relpos_max_distance)
        mask = attention_mask(segment_ids, t)
        valid = None if segment_ids is None else segment_ids != 0
        x = self.embed(tokens)
        layer_aux = []
        for block in self.blocks:
            x, aux = block(x, buckets, mask, valid)
            if aux is not None:
                layer_aux.append(aux)
        logits = self.embed.attend(self.final_norm(x))
        return logits, collect_aux(layer_aux, cfg.num_experts)


def collect_aux(layer_aux: list[dict[str, jax.Array]], num_experts: int) -> dict[str, jax.Array]:
    """Sum the losses over MoE layers; stack statistics per layer (empty rows for a dense model)."""
    if not layer_aux:
        zero = jnp.zeros((), jnp.float32)
        empty = jnp.zeros((0,), jnp.float32)
        return {"lb_loss": zero, "z_loss": zero, "expert_load": jnp.zeros((0, num_experts), jnp.float32),
                "dropped_fraction": empty, "dropped_tokens": empty, "router_entropy": empty,
                "lb_loss_per_layer": empty, "z_loss_per_layer": empty}
    stacked = {key: jnp.stack([a[key] for a in layer_aux]) for key in layer_aux[0]}
    stacked["lb_loss_per_layer"] = stacked.pop("lb_loss")
    stacked["z_loss_per_layer"] = stacked.pop("z_loss")
    stacked["lb_loss"] = stacked["lb_loss_per_layer"].sum()
    stacked["z_loss"] = stacked["z_loss_per_layer"].sum()
    return stacked
