"""GShard top-2 Mixture-of-Experts layer: pure routing and dispatch functions under a thin module.

Semantics (GShard / GLaM):
- Tokens are split into `G` groups of `S` consecutive tokens; G is a config value, never the device count, so
  routing (and the result) is the same on any mesh. Each expert holds C = ceil(capacity_factor * k * S / E)
  slots per group (GLaM: capacity_factor 1.0 -> 2S/E at k = 2; see ModelConfig for other conventions).
- A float32 softmax router picks each token's top-1 and top-2 experts; the two gates are renormalised to sum
  to one (with k = 1 the gate is the raw probability, as in Switch). The second expert is always dispatched.
- Slots are filled first choices first (in token order), then second choices. An assignment past its
  expert's capacity is dropped: its share of the MoE output is zero and the residual carries the token.
- Padding (`valid` False: segment id 0) is routed to expert E, which does not exist: it takes no slot, moves
  no real token out of one, gets a zero MoE output, and counts in no loss or statistic.
- Losses come back unweighted (the train spec's `loss:` weighs them): GShard's load-balancing loss
  E^2 * mean_e(top1_fraction_e * mean_prob_e) per group, averaged over groups holding real tokens (1.0 under
  uniform routing, larger with imbalance), and the router z-loss mean(logsumexp(logits)^2) over real tokens.

Three dispatches, one result where capacity suffices:
- "sort" (default): sorts assignments by expert and moves tokens into [E, G, C, M] buffers with gathers, never
  materialising a tokens x experts x capacity tensor.
- "einsum": GShard's one-hot [G, S, E, C] dispatch/combine tensors and einsums (O(S * E * C) memory and FLOPs).
  Both capacity dispatches compute locally on their token groups and reshard the [E, G, C, M] buffers, so under
  an `expert` mesh axis the exchange compiles to all-to-alls, never to an all-gather of the tokens.
- "dropless": no capacity. Assignments sorted by expert into one buffer, each expert's run padded to a block
  multiple (MegaBlocks), and a grouped matmul (`block_matmul` or `jax.lax.ragged_dot`). Nothing is ever dropped,
  whatever the routing. Expert weights come to the tokens (no all-to-all), so it suits scoring and data-parallel
  training; the capacity dispatches suit expert parallelism.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from model.config import ModelConfig
from model.layers import fan_in_init, gelu, param
from model.sharding import Rules, constrain

ExpertFn = Callable[[jax.Array], jax.Array]  # [E, G, C, M] -> [E, G, C, M]
GroupedFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (rows, block_expert, group_sizes) -> rows


def route(logits: jax.Array, k: int, valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top-k routing from float32 logits [G, S, E] -> experts [G, S, k] int, gates [G, S, k], probs.

    Tokens where `valid` [G, S] is False get expert E (none): every dispatch leaves them out.
    """
    e = logits.shape[-1]
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    first = jnp.argmax(probs, axis=-1)
    gate1 = jnp.take_along_axis(probs, first[..., None], axis=-1)[..., 0]
    if k == 1:
        experts, gates = first[..., None], gate1[..., None]
    else:
        rest = jnp.where(jax.nn.one_hot(first, e, dtype=jnp.bool_), -1.0, probs)
        second = jnp.argmax(rest, axis=-1)
        gate2 = jnp.take_along_axis(probs, second[..., None], axis=-1)[..., 0]
        gates = jnp.stack([gate1, gate2], axis=-1)
        gates = gates / jnp.maximum(gates.sum(-1, keepdims=True), jnp.finfo(jnp.float32).tiny)
        experts = jnp.stack([first, second], axis=-1)
    if valid is not None:
        experts = jnp.where(valid[..., None], experts, e)
    return experts.astype(jnp.int32), gates, probs


def einsum_dispatch(x: jax.Array, experts: jax.Array, gates: jax.Array, num_experts: int, capacity: int,
                    expert_fn: ExpertFn, rules: Rules) -> tuple[jax.Array, jax.Array]:
    """GShard one-hot dispatch. x [G, S, M] -> (y [G, S, M], kept [G, S, k])."""
    combine = jnp.zeros((*x.shape[:2], num_experts, capacity), jnp.float32)
    dispatch = jnp.zeros(combine.shape, jnp.bool_)
    filled = jnp.zeros((x.shape[0], 1, num_experts), jnp.int32)  # slots taken by earlier choices
    kept = []
    for j in range(experts.shape[-1]):  # first choices fill slots before second choices
        onehot = jax.nn.one_hot(experts[..., j], num_experts, dtype=jnp.int32)  # [G, S, E]; padding: all zero
        position = jnp.cumsum(onehot, axis=1) - 1 + filled
        keep = onehot * (position < capacity)
        filled = filled + keep.sum(axis=1, keepdims=True)
        slot = jax.nn.one_hot((position * onehot).sum(-1), capacity, dtype=jnp.bool_)  # [G, S, C]
        route_j = keep.astype(jnp.bool_)[..., None] & slot[:, :, None, :]  # [G, S, E, C]
        dispatch = dispatch | route_j
        combine = combine + gates[..., j, None, None] * route_j
        kept.append(keep.sum(-1) > 0)
    # Pin the one-hot tensors and the einsum outputs to the token groups' own sharding, so each einsum runs
    # where its tokens are and only the [E, G, C, M] buffers change hands (all-to-all). Without these pins
    # GSPMD pulls the expert sharding into the einsums and all-gathers every token onto every expert shard.
    dispatch = constrain(dispatch, ("batch", None, None, None), rules)
    combine = constrain(combine, ("batch", None, None, None), rules)
    expert_in = constrain(jnp.einsum("gsec,gsm->egcm", dispatch.astype(x.dtype), x),
                          (None, "batch", None, "embed"), rules)
    expert_out = expert_fn(constrain(expert_in, ("expert", "expert_group", None, "embed"), rules))
    expert_out = constrain(expert_out, (None, "batch", None, "embed"), rules)
    y = jnp.einsum("gsec,egcm->gsm", combine.astype(x.dtype), expert_out)
    return y, jnp.stack(kept, axis=-1)


def sorted_runs(flat: jax.Array, num_bins: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Stable sort of bin ids [A] -> (order, counts [num_bins], run starts [num_bins], rank of each id in its run)."""
    order = jnp.argsort(flat, stable=True)
    counts = jnp.bincount(flat, length=num_bins)
    starts = jnp.cumsum(counts) - counts
    rank = jnp.zeros_like(flat).at[order].set(jnp.arange(flat.shape[0], dtype=flat.dtype) - starts[flat[order]])
    return order, counts, starts, rank


def _sort_group(experts: jax.Array, num_experts: int, capacity: int) -> tuple[jax.Array, jax.Array]:
    """One group's slot plan from experts [S, k] -> (token per slot [E, C], slot per assignment [S, k]).

    Empty slots point at token S and dropped (or padding) assignments at slot E*C: both index an appended zero row.
    """
    s, k = experts.shape
    flat = experts.T.reshape(-1)  # choice-major: all first choices, then all second choices
    token = jnp.tile(jnp.arange(s, dtype=jnp.int32), k)
    order, counts, starts, rank = sorted_runs(flat, num_experts + 1)  # the last bin holds padding
    slot = jnp.where((rank < capacity) & (flat < num_experts), flat * capacity + rank, num_experts * capacity)
    c = jnp.arange(capacity)
    src = jnp.minimum(starts[:num_experts, None] + c[None, :], s * k - 1)
    slot_token = jnp.where(c[None, :] < counts[:num_experts, None], token[order][src], s)
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


def dropless_rows(num_assignments: int, num_experts: int, block: int) -> int:
    """Rows of the dropless buffer: every assignment plus each expert's run padded up to a block multiple."""
    blocks = -(-(num_assignments + num_experts * (block - 1)) // block)
    return blocks * block


def dropless_dispatch(x: jax.Array, experts: jax.Array, gates: jax.Array, num_experts: int, block: int,
                      grouped_fn: GroupedFn) -> tuple[jax.Array, jax.Array]:
    """Dropless dispatch. x [G, S, M] -> (y [G, S, M], kept [G, S, k]); kept is False only for padding.

    All G x S x k assignments, sorted by expert, go into one buffer of `dropless_rows` rows in which expert e's
    run starts at a multiple of `block`. `grouped_fn(rows [R, M], block_expert [R / block], group_sizes [E])`
    applies expert e to its run (group_sizes are the padded run lengths; the last expert also owns the unused
    tail, whose rows are zero). Routing groups do not matter here: no capacity, so no group can overflow.
    """
    g, s, m = x.shape
    k = experts.shape[-1]
    a = g * s * k
    flat = experts.reshape(-1)  # token-major: assignment i is token i // k's choice i % k
    _, counts, _, rank = sorted_runs(flat, num_experts + 1)  # the last bin holds padding
    counts = counts[:num_experts]
    padded = -(-counts // block) * block
    ends = jnp.cumsum(padded)
    rows = dropless_rows(a, num_experts, block)
    pstart = jnp.concatenate([ends - padded, jnp.full((1,), rows, ends.dtype)])  # padding -> past the end
    dest = pstart[flat] + rank  # buffer row of each assignment (>= rows for padding)
    x_flat = jnp.concatenate([x.reshape(g * s, m), jnp.zeros((1, m), x.dtype)])
    row_src = jnp.full((rows,), g * s, jnp.int32).at[dest].set(jnp.arange(a, dtype=jnp.int32) // k, mode="drop")
    block_expert = jnp.minimum(jnp.searchsorted(ends, jnp.arange(0, rows, block), side="right"), num_experts - 1)
    group_sizes = padded.at[-1].add(rows - ends[-1]).astype(jnp.int32)
    out = grouped_fn(x_flat[row_src], block_expert.astype(jnp.int32), group_sizes)
    out = jnp.concatenate([out, jnp.zeros((1, m), out.dtype)])
    picked = out[jnp.minimum(dest, rows)].reshape(g, s, k, m)
    y = jnp.einsum("gskm,gsk->gsm", picked, gates.astype(x.dtype))
    return y, experts < num_experts


@jax.custom_vjp
def block_matmul(x: jax.Array, w: jax.Array, block_expert: jax.Array) -> jax.Array:
    """x [N, B, K] @ w[block_expert[n]] [K, H] for each block n -> [N, B, H]: a grouped matmul as a loop over
    blocks that reads one expert's weights per block and never copies them (weights gathered per block would
    cost N x K x H memory). Its VJP accumulates each weight gradient in place, in float32."""
    def body(_: None, inp: tuple[jax.Array, jax.Array]) -> tuple[None, jax.Array]:
        xn, e = inp
        return None, xn @ w[e]
    return jax.lax.scan(body, None, (x, block_expert))[1]


def _block_matmul_fwd(x: jax.Array, w: jax.Array, block_expert: jax.Array
                      ) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
    return block_matmul(x, w, block_expert), (x, w, block_expert)


def _block_matmul_bwd(res: tuple[jax.Array, jax.Array, jax.Array], dy: jax.Array
                      ) -> tuple[jax.Array, jax.Array, None]:
    x, w, block_expert = res

    def body(dw: jax.Array, inp: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        xn, dyn, e = inp
        dw = dw.at[e].add(jnp.einsum("bk,bh->kh", xn, dyn, preferred_element_type=jnp.float32))
        return dw, (dyn @ w[e].T).astype(x.dtype)

    dw, dx = jax.lax.scan(body, jnp.zeros(w.shape, jnp.float32), (x, dy, block_expert))
    return dx, dw.astype(w.dtype), None


block_matmul.defvjp(_block_matmul_fwd, _block_matmul_bwd)


def router_aux(logits: jax.Array, probs: jax.Array, experts: jax.Array, kept: jax.Array,
               valid: jax.Array | None = None) -> dict[str, jax.Array]:
    """Losses and statistics of one MoE layer over real tokens (`valid` [G, S]; None = all real), all float32
    scalars except expert_load [E]."""
    g, s, e = probs.shape
    k = experts.shape[-1]
    v = jnp.ones((g, s), jnp.float32) if valid is None else valid.astype(jnp.float32)
    per_group = v.sum(axis=1)  # real tokens per group
    share = lambda t: (t * v[..., None]).sum(axis=1) / jnp.maximum(per_group, 1.0)[:, None]  # noqa: E731
    top1 = share(jax.nn.one_hot(experts[..., 0], e, dtype=jnp.float32))  # [G, E]
    group_lb = jnp.mean(top1 * share(probs), axis=-1) * e * e
    lb_loss = jnp.sum(jnp.where(per_group > 0, group_lb, 0.0)) / jnp.maximum(jnp.sum(per_group > 0), 1)
    n = jnp.maximum(v.sum(), 1.0)
    mean = lambda t: jnp.sum(t * v) / n  # noqa: E731
    entropy = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(probs), 0.0), axis=-1)
    kept_f = kept.astype(jnp.float32)
    return {
        "lb_loss": lb_loss,
        "z_loss": mean(jax.nn.logsumexp(logits, axis=-1) ** 2),
        # Share of real assignments routed to each expert (padding's expert E one-hots to zeros).
        "expert_load": jax.nn.one_hot(experts, e, dtype=jnp.float32).sum(axis=(0, 1, 2)) / (n * k),
        "dropped_fraction": mean(k - kept_f.sum(-1)) / k,  # of real (token, choice) assignments
        "dropped_tokens": mean(1.0 - kept_f.max(-1)),  # real tokens that reached no expert at all
        "router_entropy": mean(entropy),
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
        """Capacity layout [E, G, C, M] -> [E, G, C, M]; each expert is gelu(x Wi) Wo."""
        dt, rules = self.config.dtype, self.config.rules
        h = gelu(jnp.einsum("egcm,emh->egch", x, self.wi[...].astype(dt)))
        h = constrain(h, ("expert", "expert_group", None, "mlp"), rules)
        y = jnp.einsum("egch,ehm->egcm", h, self.wo[...].astype(dt))
        return constrain(y, ("expert", "expert_group", None, "embed"), rules)

    def grouped_experts(self, rows: jax.Array, block_expert: jax.Array, group_sizes: jax.Array) -> jax.Array:
        """Dropless layout: rows [R, M] sorted by expert -> [R, M] (see dropless_dispatch)."""
        dt = self.config.dtype
        wi, wo = self.wi[...].astype(dt), self.wo[...].astype(dt)
        if self.dropless_impl == "ragged":
            h = gelu(jax.lax.ragged_dot(rows, wi, group_sizes))
            return jax.lax.ragged_dot(h, wo, group_sizes)
        blocks = rows.reshape(block_expert.shape[0], -1, rows.shape[-1])
        h = gelu(block_matmul(blocks, wi, block_expert))
        return block_matmul(h, wo, block_expert).reshape(rows.shape)

    @property
    def dropless_impl(self) -> str:
        """The configured grouped matmul; "auto" takes ragged_dot on TPU (a native kernel), blocks elsewhere."""
        impl = self.config.dropless_impl
        return impl if impl != "auto" else "ragged" if jax.default_backend() == "tpu" else "blocks"

    def __call__(self, x: jax.Array, valid: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """x [b, t, M]; valid [b, t] bool (False = padding) or None -> (y [b, t, M], aux)."""
        cfg = self.config
        b, t, m = x.shape
        groups = cfg.groups_for(b * t)
        xg = constrain(x.reshape(groups, b * t // groups, m), ("batch", None, "embed"), cfg.rules)
        vg = None if valid is None else valid.reshape(groups, -1)
        logits = jnp.einsum("gsm,me->gse", xg.astype(jnp.float32), self.router[...].astype(jnp.float32))
        experts, gates, probs = route(logits, cfg.k, vg)
        if cfg.dispatch == "dropless":
            block = 1 if self.dropless_impl == "ragged" else cfg.dropless_block
            y, kept = dropless_dispatch(xg, experts, gates, cfg.num_experts, block, self.grouped_experts)
        else:
            dispatch = einsum_dispatch if cfg.dispatch == "einsum" else sort_dispatch
            y, kept = dispatch(xg, experts, gates, cfg.num_experts, cfg.capacity(xg.shape[1]), self.experts,
                               cfg.rules)
        y = constrain(y, ("batch", None, "embed"), cfg.rules).reshape(b, t, m)
        return y, router_aux(logits, probs, experts, kept, vg)
