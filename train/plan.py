"""`glamkit train --plan`: will a train spec's step fit its accelerators? Compile it and count, allocating nothing.

One full training step (forward, backward over every micro-batch of the gradient accumulation, optimizer update)
is lowered from abstract shapes for the spec's mesh and compiled by XLA for N forced host devices
(`--xla_force_host_platform_device_count`: `plan_in_subprocess` starts a child process with it). Per device:
- parameter, optimizer-state and gradient bytes, exact: each array's shard shape under its sharding (gradients
  are float32 arrays sharded like their parameters), split into expert and other ("dense") parameters;
- temporaries: XLA's own buffer assignment for the step, labelled as the XLA:CPU estimate it is. XLA:CPU computes
  bf16 matmuls in float32, so it overstates a GPU's or TPU's bf16 temporaries, and its temporaries already hold
  the gradient buffers, which the total counts again: the total is an upper bound;
- micro-batch rows and tokens per device and the gradient-accumulation steps;
- every collective in the compiled step with its count and bytes, a collective inside a loop (the layer scan,
  the micro-batch scan) counted once per trip.
The verdict is "fits" only when the total is under 0.9 x the device memory and each micro-step gives every device at
least 8K tokens (fewer leaves the matmuls too small to use the device well).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from data_specs.errors import GlamkitError
from data_specs.loader import parse_set_args
from train.config import load_train_spec, model_config

FIT_FRACTION = 0.9
MIN_TOKENS_PER_DEVICE = 8192
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4,
               "s64": 8, "u64": 8, "f64": 8}
_SHAPE = re.compile(r"\b(pred|[suf]\d+|bf16)\[([\d,]*)\]")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$")
_COLLECTIVE = re.compile(r"^\s*(?:ROOT )?%[\w.\-]+ = (.*?) (" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
_CALLS = re.compile(r"(?:calls|to_apply|body|condition|branch_computations)=\{?(%[\w.\-]+(?:, %[\w.\-]+)*)\}?")
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def shape_bytes(text: str) -> int:
    """Bytes of every array shape in an HLO type string, e.g. '(f32[4,8]{1,0}, bf16[2])' -> 132."""
    total = 0
    for dtype, dims in _SHAPE.findall(text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        total += n * DTYPE_BYTES[dtype]
    return total


def hlo_collectives(hlo: str) -> dict[str, dict[str, int]]:
    """{op: {"count", "bytes"}} over a compiled module's text, ops inside a while loop multiplied by its known
    trip count (nested loops multiply). Bytes are each op's result size on one device."""
    bodies: dict[str, list[str]] = {}
    entry = current = None
    for line in hlo.splitlines():
        match = _COMPUTATION.match(line)
        if match:
            current = match.group(1)
            bodies[current] = []
            entry = current if line.startswith("ENTRY") else entry
        elif current is not None:
            bodies[current].append(line)
    times: dict[str, int] = {}

    def visit(name: str, multiplier: int) -> None:
        times[name] = times.get(name, 0) + multiplier
        for line in bodies.get(name, ()):
            calls = _CALLS.findall(line)
            if not calls:
                continue
            trips = _TRIP_COUNT.search(line)
            inner = multiplier * (int(trips.group(1)) if trips and " while(" in line else 1)
            for group in calls:
                for callee in group.split(", "):
                    visit(callee.lstrip("%"), inner)

    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")
    visit(entry, 1)
    out: dict[str, dict[str, int]] = {}
    for name, multiplier in times.items():
        for line in bodies.get(name, ()):
            match = _COLLECTIVE.match(line)
            if match:
                row = out.setdefault(match.group(2), {"count": 0, "bytes": 0})
                row["count"] += multiplier
                row["bytes"] += multiplier * shape_bytes(match.group(1))
    return out


def plan_step(spec: Any, device_memory_gb: float) -> dict[str, Any]:
    """The plan of `spec`'s training step on the devices this process sees (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from model.transformer import Transformer
    from train.mesh import batch_sharding, build_mesh, data_parallel_size
    from train.optim import make_optimizer, make_schedule
    from train.step import make_train_step, state_layout

    config = model_config(spec)
    mesh = build_mesh(spec.mesh)
    devices = mesh.size
    dp = data_parallel_size(mesh)
    micro_rows = spec.batch_size // spec.grad_accum
    if micro_rows % dp:
        raise GlamkitError(f"micro-batch {micro_rows} rows cannot be split over {dp} data-parallel devices")
    tx = make_optimizer(spec.optimizer, spec.steps)
    graphdef, abstract, shardings = state_layout(config, mesh, tx)
    step = make_train_step(graphdef, tx, make_schedule(spec.optimizer, spec.steps), spec.loss, spec.grad_accum,
                           spec.skip_nonfinite, shardings, batch_sharding(mesh))
    rows = jax.ShapeDtypeStruct((spec.batch_size, spec.seq_len), jnp.int32, sharding=batch_sharding(mesh))
    batch = {k: rows for k in ("tokens", "segment_ids", "positions", "targets", "components")}
    batch["weights"] = jax.ShapeDtypeStruct(rows.shape, jnp.float32, sharding=rows.sharding)
    with jax.set_mesh(mesh):
        compiled = step.lower(abstract, batch).compile()
    memory = compiled.memory_analysis()

    def per_device(x: Any) -> int:
        return int(np.prod(x.sharding.shard_shape(x.shape))) * jnp.dtype(x.dtype).itemsize

    _, variables = nnx.split(nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0))))
    kind = lambda v: v.replace("expert" if "expert" in v.get_metadata()["logical_axes"] else "dense")  # noqa: E731
    kinds = nnx.to_pure_dict(jax.tree.map(kind, variables, is_leaf=lambda x: isinstance(x, nnx.Variable)))
    params = _by_kind(abstract["params"], kinds, per_device)
    grads = _by_kind(abstract["params"], kinds, lambda x: per_device(x) // jnp.dtype(x.dtype).itemsize * 4)
    opt = sum(per_device(x) for x in jax.tree.leaves(abstract["opt"]))
    temporaries = int(memory.temp_size_in_bytes)
    total = params["total"] + grads["total"] + opt + temporaries
    budget = device_memory_gb * 2**30
    tokens_per_device = micro_rows // dp * spec.seq_len
    fits = total < FIT_FRACTION * budget and tokens_per_device >= MIN_TOKENS_PER_DEVICE
    return {
        "spec": spec.name, "model": spec.model, "devices": devices,
        "mesh": {axis: int(size) for axis, size in mesh.shape.items()},
        "device_memory_bytes": int(budget),
        "params_bytes": params, "grads_bytes": grads, "opt_state_bytes": opt,
        "temporaries_bytes_xla_cpu_estimate": temporaries, "total_bytes": total,
        "micro_batch_rows_per_device": micro_rows // dp, "micro_batch_tokens_per_device": tokens_per_device,
        "grad_accum": spec.grad_accum, "tokens_per_step": spec.batch_size * spec.seq_len,
        "collectives": hlo_collectives(compiled.as_text()),
        "fits": fits,
        "verdict": _verdict(fits, total, budget, tokens_per_device),
    }


def _by_kind(tree: Any, kinds: Any, size: Any) -> dict[str, int]:
    import jax

    out = {"expert": 0, "dense": 0}
    for leaf, kind in zip(jax.tree.leaves(tree), jax.tree.leaves(kinds), strict=True):
        out[kind] += size(leaf)
    out["total"] = out["expert"] + out["dense"]
    return out


def _verdict(fits: bool, total: int, budget: float, tokens: int) -> str:
    if fits:
        return f"fits: {total / 2**30:.1f} GiB of {FIT_FRACTION:.0%} x {budget / 2**30:.0f} GiB, {tokens:,} tokens"
    reasons = []
    if total >= FIT_FRACTION * budget:
        reasons.append(f"{total / 2**30:.1f} GiB >= {FIT_FRACTION:.0%} x {budget / 2**30:.0f} GiB")
    if tokens < MIN_TOKENS_PER_DEVICE:
        reasons.append(f"{tokens:,} tokens per device per micro-step < {MIN_TOKENS_PER_DEVICE:,}")
    return "does not fit: " + "; ".join(reasons)


def format_plan(plan: Mapping[str, Any]) -> str:
    """The plan as the table `glamkit train --plan` prints."""
    gib = lambda n: f"{n / 2**30:,.2f} GiB"  # noqa: E731
    mesh = " x ".join(f"{k}={v}" for k, v in plan["mesh"].items())
    p, g = plan["params_bytes"], plan["grads_bytes"]
    lines = [
        f"plan: {plan['spec']} ({plan['model']}) on {plan['devices']} devices, mesh {mesh}, "
        f"{plan['device_memory_bytes'] / 2**30:.0f} GiB each",
        "per device:",
        f"  parameters           {gib(p['total']):>14}   (experts {gib(p['expert'])}, other {gib(p['dense'])})",
        f"  gradients            {gib(g['total']):>14}   (experts {gib(g['expert'])}, other {gib(g['dense'])})",
        f"  optimizer state      {gib(plan['opt_state_bytes']):>14}",
        f"  temporaries          {gib(plan['temporaries_bytes_xla_cpu_estimate']):>14}   (XLA:CPU estimate: "
        "bf16 matmuls run in float32 there; includes the gradient buffers)",
        f"  total                {gib(plan['total_bytes']):>14}   (upper bound)",
        f"  micro-batch          {plan['micro_batch_rows_per_device']} rows, "
        f"{plan['micro_batch_tokens_per_device']:,} tokens; gradient accumulation {plan['grad_accum']} "
        f"({plan['tokens_per_step']:,} tokens per step)",
        "collectives per step (per device; inside loops x trip count):",
    ]
    for op, row in sorted(plan["collectives"].items()):
        lines.append(f"  {op:20s} {row['count']:>8,} ops {gib(row['bytes']):>14}")
    if not plan["collectives"]:
        lines.append("  none")
    lines.append(plan["verdict"])
    return "\n".join(lines)


def plan_in_subprocess(config: str, devices: int, device_memory_gb: float, overrides: list[str]) -> dict[str, Any]:
    """Run `python -m train.plan` with `devices` forced host devices (the flag must be set before JAX starts)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}")
    args = [sys.executable, "-m", "train.plan", config, str(device_memory_gb), *overrides]
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        raise GlamkitError(f"plan of {config} on {devices} devices failed: {lines[-1] if lines else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    """Child entry point: CONFIG DEVICE_MEMORY_GB [KEY=VALUE ...]; prints the plan as one JSON line."""
    config, memory, *overrides = argv
    spec = load_train_spec(config, parse_set_args(overrides))
    print(json.dumps(plan_step(spec, float(memory))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
