"""The GLaM decoder-only Transformer (Flax NNX).

    model = Transformer(config, rngs=nnx.Rngs(0))
    logits, aux = model(tokens, segment_ids=None)
    hidden, aux = model.hidden(tokens, segment_ids)  # final states; model.embed.attend(hidden) gives the logits
    loss = cross_entropy(logits, targets) + load_balance * aux["lb_loss"] + router_z * aux["z_loss"]

(the weights are the train spec's `loss:` section, data_specs.specs.LossSpec; the trainer never materialises the
full logits: it computes the loss from `hidden` in chunks, train/losses.py).

Pre-norm blocks (RMSNorm -> attention -> residual, RMSNorm -> feed-forward -> residual); the feed-forward
of every `moe_interval`-th layer is an MoE layer, the rest dense GLU blocks; a final RMSNorm and the tied
embedding produce float32 logits. `aux` sums the losses over MoE layers (GShard adds each layer's loss) and
stacks the per-layer statistics, one row per MoE layer.

With `scan_layers` the layers are `num_layers / scan_unit` repeats of one `Pattern` (dense blocks, then the MoE
block) whose parameters are stacked on a leading "layers" axis, applied by `jax.lax.scan`; `remat` wraps the
scanned body (or each unrolled block) in `jax.checkpoint` with the configured policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from model.attention import Attention, attention_mask, relative_buckets
from model.config import ModelConfig
from model.layers import MLP, Embed, RMSNorm
from model.moe import MoE
from model.sharding import param_shardings

Aux = dict[str, jax.Array]
REMAT_POLICIES: dict[str, Any] = {"full": None, "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


class Block(nnx.Module):
    def __init__(self, config: ModelConfig, layer: int, *, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(config, rngs=rngs)
        self.attn = Attention(config, rngs=rngs)
        self.ffn_norm = RMSNorm(config, rngs=rngs)
        self.ffn = MoE(config, rngs=rngs) if config.is_moe_layer(layer) else MLP(config, rngs=rngs)

    def __call__(self, x: jax.Array, buckets: jax.Array, mask: jax.Array, valid: jax.Array | None
                 ) -> tuple[jax.Array, Aux | None]:
        x = x + self.attn(self.attn_norm(x), buckets, mask)
        if isinstance(self.ffn, MoE):
            y, aux = self.ffn(self.ffn_norm(x), valid)
            return x + y, aux
        return x + self.ffn(self.ffn_norm(x)), None


class Pattern(nnx.Module):
    """One repeat of the layer pattern, the unit `scan_layers` stacks: scan_unit blocks, the last one MoE."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.blocks = nnx.List([Block(config, i, rngs=rngs) for i in range(config.scan_unit)])

    def __call__(self, x: jax.Array, buckets: jax.Array, mask: jax.Array, valid: jax.Array | None
                 ) -> tuple[jax.Array, Aux]:
        aux: Aux = {}
        for block in self.blocks:
            x, block_aux = block(x, buckets, mask, valid)
            aux = block_aux or aux
        return x, aux


def stacked_patterns(config: ModelConfig, rngs: nnx.Rngs) -> Pattern:
    """num_layers / scan_unit Patterns, each parameter stacked on a leading "layers" axis (its logical name)."""
    keys = jax.random.split(rngs.params(), config.num_layers // config.scan_unit)
    stack = nnx.vmap(lambda key: Pattern(config, rngs=nnx.Rngs(params=key)), in_axes=0, out_axes=0)(keys)
    for _, var in nnx.iter_graph(stack):
        if isinstance(var, nnx.Param):
            var.set_metadata(logical_axes=("layers", *var.get_metadata()["logical_axes"]))
    return stack


def remat(fn: Callable[..., Any], policy: str) -> Callable[..., Any]:
    """`fn` under jax.checkpoint with the named policy (ModelConfig.remat); "none" leaves it as is."""
    if policy == "none":
        return fn
    return jax.checkpoint(fn, policy=REMAT_POLICIES[policy], prevent_cse=False)


class Transformer(nnx.Module):
    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embed = Embed(config, rngs=rngs)
        if config.scan_layers:
            self.layers = stacked_patterns(config, rngs)
        else:
            self.blocks = nnx.List([Block(config, i, rngs=rngs) for i in range(config.num_layers)])
        self.final_norm = RMSNorm(config, rngs=rngs)

    def __call__(self, tokens: jax.Array, segment_ids: jax.Array | None = None) -> tuple[jax.Array, Aux]:
        """tokens int [b, t]; segment_ids [b, t] (documents of a packed row; 0 = padding, which MoE layers leave
        out of routing). Returns float32 logits [b, t, vocab] and the aux dict."""
        hidden, aux = self.hidden(tokens, segment_ids)
        return self.embed.attend(hidden), aux

    def hidden(self, tokens: jax.Array, segment_ids: jax.Array | None = None) -> tuple[jax.Array, Aux]:
        """The final normalised states [b, t, M] (logits = embed.attend of them) and the aux dict."""
        cfg = self.config
        order = jnp.arange(tokens.shape[1])
        buckets = relative_buckets(order, order, cfg.relpos_buckets, cfg.relpos_max_distance)
        mask = attention_mask(segment_ids, tokens.shape[1])
        valid = None if segment_ids is None else segment_ids != 0
        x = self.embed(tokens)
        if cfg.scan_layers:
            graphdef, state = nnx.split(self.layers)
            body = remat(lambda x, layer: nnx.merge(graphdef, layer)(x, buckets, mask, valid), cfg.remat)
            x, stacked = jax.lax.scan(body, x, state)
        else:
            per_layer = []
            for block in self.blocks:
                graphdef, state = nnx.split(block)
                call = remat(lambda x, s, graphdef=graphdef: nnx.merge(graphdef, s)(x, buckets, mask, valid),
                             cfg.remat)
                x, aux = call(x, state)
                if aux is not None:
                    per_layer.append(aux)
            stacked = {key: jnp.stack([a[key] for a in per_layer]) for key in per_layer[0]} if per_layer else {}
        return self.final_norm(x), collect_aux(stacked, cfg.num_experts)


def collect_aux(stacked: Aux, num_experts: int) -> Aux:
    """Per-MoE-layer statistics [layers, ...] -> the aux dict: losses summed over layers, statistics per layer
    (empty rows for a dense model)."""
    if not stacked:
        zero = jnp.zeros((), jnp.float32)
        empty = jnp.zeros((0,), jnp.float32)
        return {"lb_loss": zero, "z_loss": zero, "expert_load": jnp.zeros((0, num_experts), jnp.float32),
                "dropped_fraction": empty, "dropped_tokens": empty, "router_entropy": empty,
                "lb_loss_per_layer": empty, "z_loss_per_layer": empty}
    out = dict(stacked)
    out["lb_loss_per_layer"] = out.pop("lb_loss")
    out["z_loss_per_layer"] = out.pop("z_loss")
    out["lb_loss"] = out["lb_loss_per_layer"].sum()
    out["z_loss"] = out["z_loss_per_layer"].sum()
    return out


def create_sharded_model(config: ModelConfig, mesh: Mesh, seed: int = 0) -> Any:
    """Initialise a Transformer with every parameter created directly in its sharded place.

    Shapes come from `nnx.eval_shape` (nothing allocated), then a jitted init writes each parameter straight
    to its shards, so a model larger than one device's memory can still be built.
    """
    def init() -> Transformer:
        return Transformer(config, rngs=nnx.Rngs(seed))

    graphdef, abstract_state = nnx.split(nnx.eval_shape(init))
    shardings = param_shardings(abstract_state, mesh, config.rules)
    with jax.set_mesh(mesh):
        state = jax.jit(lambda: nnx.state(init()), out_shardings=shardings)()
    return nnx.merge(graphdef, state)
