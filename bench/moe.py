"""Benchmark: MoE training step in each dispatch mode vs a dense model of the same activated width.

    python bench/moe.py      # CPU: tiny-moe (E=16, GLaM capacity 2S/E, groups of 1024 tokens)
    python bench/moe.py --preset glam-0.1b-64e --batch 16 --seq-len 1024   # on a GPU: adds model FLOP util.

The dense baseline has the MoE model's shape, with each MoE block replaced by a two-matrix GELU feed-forward
of the MoE's activated width (k experts x expert width), so both do the same model FLOPs per token. The MoE
modes pay for dispatch and for the expert rows they compute beyond the k x tokens assignments: empty capacity
slots (sort, einsum), block padding (dropless); einsum also pays its one-hot dispatch/combine matmuls. The
FLOPs/token column counts all of that (matmuls, forward + backward), from shapes. Each variant's
forward+backward (cross-entropy + auxiliary losses weighted as the train spec's defaults, gradients for all
parameters) is jitted and timed after warm-up, the variants interleaved; the table prints the median step time
and its ratios to the dense and the capacity (sort) steps measured in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import jax
import jax.numpy as jnp
from flax import nnx

from data_specs.specs import LossSpec
from model.config import ModelConfig
from model.info import model_info
from model.layers import fan_in_init, gelu, param
from model.moe import dropless_rows
from model.presets import get_config
from model.transformer import Transformer

# Dense bf16 peak TFLOP/s by device kind substring (no sparsity), for model FLOP utilisation.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "v5e": 197.0, "v4": 275.0}


class DenseFFN(nnx.Module):
    """Two-matrix GELU feed-forward: one expert, widened to the MoE's activated width."""

    def __init__(self, config: ModelConfig, width: int, *, rngs: nnx.Rngs):
        m, pd = config.embed_dim, config.param_dtype
        self.wi = param(rngs, fan_in_init(0, 1), (m, width), ("embed", "mlp"), pd)
        self.wo = param(rngs, fan_in_init(0, 1), (width, m), ("mlp", "embed"), pd)
        self.dtype = config.dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        return gelu(x @ self.wi[...].astype(self.dtype)) @ self.wo[...].astype(self.dtype)


def dense_baseline(config: ModelConfig, seed: int = 0) -> Transformer:
    model = Transformer(dataclasses.replace(config, num_experts=0), rngs=nnx.Rngs(seed))
    rngs = nnx.Rngs(seed + 1)
    for i, block in enumerate(model.blocks):
        if config.is_moe_layer(i):
            block.ffn = DenseFFN(model.config, config.k * config.expert_dim, rngs=rngs)
    return model


LOSS = LossSpec()  # the train spec's default loss weights


def make_step(model: Transformer, weights: LossSpec = LOSS):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(params: Any, tokens: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        logits, aux = nnx.merge(graphdef, params, rest)(tokens[:, :-1])
        logp = jax.nn.log_softmax(logits, axis=-1)
        ce = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1).mean()
        loss = ce + weights.load_balance * aux["lb_loss"] + weights.router_z * aux["z_loss"]
        return loss, aux

    step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    return step, params


def expert_rows(config: ModelConfig, tokens: int) -> int:
    """Rows one MoE layer's experts compute for `tokens` tokens: capacity slots, or the dropless buffer."""
    if config.dispatch == "dropless":
        block = 1 if config.dropless_impl == "ragged" else config.dropless_block
        return dropless_rows(tokens * config.k, config.num_experts, block)
    groups = config.groups_for(tokens)
    return config.num_experts * groups * config.capacity(tokens // groups)


def executed_flops_per_token(config: ModelConfig, model_flops: float, tokens: int) -> float:
    """Model FLOPs plus, per MoE layer, the expert matmuls on rows beyond the k x tokens assignments and einsum's
    one-hot dispatch/combine matmuls; training = 3 x forward."""
    if not config.is_moe:
        return model_flops
    m, h = config.embed_dim, config.expert_dim
    extra = 2 * 2 * m * h * (expert_rows(config, tokens) - config.k * tokens)
    if config.dispatch == "einsum":
        extra += 2 * 2 * tokens * expert_rows(config, tokens) // config.groups_for(tokens) * m
    return model_flops + 3 * config.num_moe_layers * extra / tokens


def warm_up(step, params: Any, tokens: jax.Array, warmup: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    for _ in range(warmup):
        (_, aux), _ = jax.block_until_ready(step(params, tokens))
    return time.perf_counter() - t0, aux


def time_round_robin(runs: dict[str, tuple], tokens: jax.Array, steps: int) -> dict[str, float]:
    """Median step time per variant, the variants interleaved so that machine noise hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(steps):
        for name, (step, params) in runs.items():
            t = time.perf_counter()
            jax.block_until_ready(step(params, tokens))
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    gpu = jax.default_backend() == "gpu"
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--preset", default="tiny-moe")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--group-size", type=int, default=1024)
    p.add_argument("--capacity-factor", type=float, default=1.0, help="default 1.0: GLaM's 2S/E slots (k=2)")
    p.add_argument("--dtype", default="bfloat16" if gpu else "float32",
                   help="compute dtype (default bf16 on GPU; float32 on CPU, where bf16 matmuls are slow)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variants", default="dense,sort,einsum,dropless",
                   help="dense, sort, einsum, dropless (this backend's default impl), dropless-blocks, "
                        "dropless-ragged")
    args = p.parse_args(argv)

    import flax
    dev = jax.devices()[0]
    print(f"jax {jax.__version__}, flax {flax.__version__}, backend {jax.default_backend()}, "
          f"device {dev.device_kind} x{jax.device_count()}")
    # Unrolled layers: the dense baseline swaps individual blocks' feed-forwards (scanning changes neither side).
    base = get_config(args.preset, capacity_factor=args.capacity_factor, group_size=args.group_size,
                      num_groups=None, dtype=args.dtype, scan_layers=False)
    tokens_per_step = args.batch * args.seq_len
    groups = base.groups_for(tokens_per_step)
    group = tokens_per_step // groups
    print(f"preset {args.preset}: L={base.num_layers} M={base.embed_dim} H={base.mlp_dim} "
          f"E={base.num_experts} k={base.k} capacity_factor={base.capacity_factor} dtype={base.dtype}; "
          f"batch {args.batch}x{args.seq_len} = {tokens_per_step} tokens, {groups} groups of {group} tokens, "
          f"capacity {base.capacity(group)}")
    info = model_info(base, seq_len=args.seq_len)
    flops_per_token = info["flops_per_token"]  # dense baseline has the same activated width, same model FLOPs
    print(f"params: total {info['total_params'] / 1e6:.1f}M, "
          f"activated {info['activated_params'] / 1e6:.1f}M; model FLOPs/token {flops_per_token / 1e6:.1f}M")
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in dev.device_kind), None) if gpu else None

    # +1 token so inputs are seq_len long after the shift to targets.
    tokens = jax.random.randint(jax.random.key(0), (args.batch, args.seq_len + 1), 0, base.vocab_size)
    runs, warm, names = {}, {}, {}
    for variant in args.variants.split(","):
        if variant == "dense":
            config, model = base, dense_baseline(base)
            names[variant] = "dense (activated width)"
        else:
            dispatch, _, impl = variant.partition("-")
            config = dataclasses.replace(base, dispatch=dispatch, dropless_impl=impl or base.dropless_impl)
            model = Transformer(config, rngs=nnx.Rngs(0))
            if dispatch == "dropless":
                impl = model.blocks[1].ffn.dropless_impl
                block = 1 if impl == "ragged" else config.dropless_block
                names[variant] = f"MoE, dropless ({impl}, block {block})"
            else:
                names[variant] = f"MoE, {dispatch} dispatch, capacity {config.capacity(group)}"
        runs[variant] = make_step(model)
        compile_s, aux = warm_up(*runs[variant], tokens, args.warmup)
        dropped = aux["dropped_fraction"]
        flops = executed_flops_per_token(config, flops_per_token, tokens_per_step)
        warm[variant] = (flops, compile_s, float(dropped.mean()) if dropped.size else 0.0)
    medians = time_round_robin(runs, tokens, args.steps)
    rows = [(v, medians[v], *warm[v]) for v in runs]

    dense_s, capacity_s = medians.get("dense"), medians.get("sort")
    head = ("| variant | FLOPs/token (M) | step (ms) | vs dense | vs capacity (sort) | tokens/s | dropped "
            "| warm-up+compile (s) |")
    if peak:
        head += " model TFLOP/s | MFU |"
    print("\n" + head + "\n" + "|---" * (head.count("|") - 1) + "|")
    for variant, seconds, flops, compile_s, dropped in rows:
        ratio = f"{seconds / dense_s:.2f}x" if dense_s else "-"
        vs_capacity = f"{seconds / capacity_s:.2f}x" if capacity_s and variant != "dense" else "-"
        line = (f"| {names[variant]} | {flops / 1e6:.1f} | {seconds * 1e3:.1f} | {ratio} | {vs_capacity} | "
                f"{tokens_per_step / seconds:,.0f} | {dropped:.3f} | {compile_s:.1f} |")
        if peak:
            tflops = flops_per_token * tokens_per_step / seconds / 1e12
            line += f" {tflops:.1f} | {tflops / peak:.1%} |"
        print(line)
    if gpu and not peak:
        print(f"(no peak FLOP/s known for {dev.device_kind}: MFU not computed)")
    elif peak:
        print(f"MFU = model FLOPs/token x tokens/s / {peak:.0f} TFLOP/s (dense bf16 peak, {dev.device_kind})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
