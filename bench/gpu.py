"""GPU benchmark: tokens/s and MFU of GLaM-shaped training steps, bf16, capacity and dropless MoE modes.

    python3 bench/gpu.py            # on one H100/H200: under 4 minutes; prints the JAX version and the device
    python bench/gpu.py --smoke     # on a CPU: the same code path on tiny shapes (what the tests run)

Rows: a glam-0.1b-64e-shaped model (12 layers, M 768, 64 experts) and a glam-1.7b-64e slice (the same widths,
4 layers instead of 24), each with the capacity (sort) and the dropless dispatch (on a GPU both dropless grouped
matmuls, the block loop and ragged_dot, to settle which `dropless_impl: auto` should take there). Each row is
one full training step as `glamkit train` runs it (Adafactor, chunked loss, scanned layers, bf16 activations),
jitted, timed after warm-up; MFU = model FLOPs/token (model.info) x tokens/s / the device's dense bf16 peak. The
last column compares the step's own `memory_analysis()` on this device (arguments + temporaries) with `glamkit
train --plan`'s XLA:CPU estimate of the same step (computed in a CPU subprocess), which overstates bf16
temporaries. Imports no Beam.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0}
ROWS = (  # (name, train spec, overrides)
    ("glam-0.1b-64e", "glam-0.1b-64e-1xh100", {"batch_size": 16}),
    ("glam-1.7b-64e, 4 of 24 layers", "glam-1.7b-64e-8xh100",
     {"batch_size": 8, "model_overrides.num_layers": 4, "mesh.expert": 1}),
)
SMOKE = {"model_overrides.num_layers": 2, "model_overrides.embed_dim": 64, "model_overrides.mlp_dim": 128,
         "model_overrides.num_heads": 2, "model_overrides.head_dim": 32, "model_overrides.num_experts": 8,
         "model_overrides.vocab_size": 512, "seq_len": 128, "batch_size": 4, "activation_dtype": "float32"}


def step_rate(spec_name: str, overrides: dict, steps: int) -> dict:
    """Median seconds of one training step, its memory analysis and the model FLOPs/token."""
    import jax
    import jax.numpy as jnp

    from model.info import model_info
    from train.config import load_train_spec, model_config
    from train.mesh import batch_sharding, build_mesh
    from train.optim import make_optimizer, make_schedule
    from train.step import init_state, make_train_step

    spec = load_train_spec(spec_name, {"grad_accum": 1, **overrides})
    config = model_config(spec)
    mesh = build_mesh(spec.mesh)
    tx = make_optimizer(spec.optimizer, spec.steps)
    graphdef, state, shardings = init_state(config, mesh, tx, 0)
    step = make_train_step(graphdef, tx, make_schedule(spec.optimizer, spec.steps), spec.loss, 1,
                           spec.skip_nonfinite, shardings, batch_sharding(mesh))
    shape = (spec.batch_size, spec.seq_len)
    tokens = jax.random.randint(jax.random.key(0), shape, 3, config.vocab_size, jnp.int32)
    ones = jnp.ones(shape, jnp.int32)
    batch = {"tokens": tokens, "segment_ids": ones, "positions": jnp.broadcast_to(jnp.arange(shape[1]), shape),
             "targets": jnp.roll(tokens, -1, axis=1), "weights": ones.astype(jnp.float32), "components": 0 * ones}
    batch = jax.device_put(batch, batch_sharding(mesh))
    with jax.set_mesh(mesh):
        compiled = step.lower(state, batch).compile()
        memory = compiled.memory_analysis()
        for _ in range(2):
            state, out = step(state, batch)
        jax.block_until_ready(out)
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            state, out = step(state, batch)
            jax.block_until_ready(out)
            times.append(time.perf_counter() - t)
    dropped = out["dropped_fraction"]
    return {"seconds": statistics.median(times), "tokens": shape[0] * shape[1],
            "flops_per_token": model_info(config, spec.seq_len)["flops_per_token"],
            "device_bytes": int(memory.argument_size_in_bytes + memory.temp_size_in_bytes),
            "dropped": float(dropped.mean()) if dropped.size else 0.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="tiny shapes, any backend: checks the code path")
    p.add_argument("--no-plan", action="store_true", help="skip the XLA:CPU plan comparison")
    args = p.parse_args(argv)
    import jax

    from train.plan import plan_in_subprocess

    dev = jax.devices()[0]
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, device {dev.device_kind} x{jax.device_count()}")
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in dev.device_kind), None)
    print("| model | dispatch | tokens/step | step (ms) | tokens/s | model TFLOP/s | MFU | dropped "
          "| device memory (GiB) | --plan XLA:CPU estimate (GiB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, spec_name, overrides in ROWS:
        overrides = {**overrides, **(SMOKE if args.smoke else {})}
        planned = None
        if not args.no_plan:
            sets = [f"{k}={v}" for k, v in {"grad_accum": 1, **overrides}.items()]
            plan = plan_in_subprocess(spec_name, 1, 80, sets)
            planned = (plan["params_bytes"]["total"] + plan["opt_state_bytes"]
                       + plan["temporaries_bytes_xla_cpu_estimate"])
        modes = {"sort": {}, "dropless": {}}  # dropless: this backend's default grouped matmul (auto)
        if jax.default_backend() == "gpu":  # which grouped matmul should GPUs default to? measure both
            modes = {"sort": {}, "dropless-blocks": {"model_overrides.dropless_impl": "blocks"},
                     "dropless-ragged": {"model_overrides.dropless_impl": "ragged"}}
        for dispatch, extra in modes.items():
            mode = {"model_overrides.dispatch": dispatch.split("-")[0], **extra}
            r = step_rate(spec_name, {**overrides, **mode}, args.steps)
            tflops = r["flops_per_token"] * r["tokens"] / r["seconds"] / 1e12
            mfu = f"{tflops / peak:.1%}" if peak else "-"
            plan_gib = f"{planned / 2**30:.1f}" if planned is not None and dispatch == "sort" else "-"
            print(f"| {name} | {dispatch} | {r['tokens']:,} | {r['seconds'] * 1e3:.1f} | "
                  f"{r['tokens'] / r['seconds']:,.0f} | {tflops:.1f} | {mfu} | {r['dropped']:.3f} | "
                  f"{r['device_bytes'] / 2**30:.1f} | {plan_gib} |", flush=True)
    if not peak:
        print(f"(no peak FLOP/s known for {dev.device_kind}: MFU not computed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
