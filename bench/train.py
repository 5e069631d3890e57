"""Benchmark: trainer tokens/s (tiny preset on CPU; a 0.1B/64E-shaped preset on a GPU) and the input pipeline alone.

    python bench/train.py                                   # shards: runs/demo/shards if present, else synthetic
    python bench/train.py --shards runs/demo/shards --steps 20

The trainer row runs `train.loop.Trainer` exactly as `glamkit train` does (tiny.yaml: tiny-moe, batch 8 x 256,
float32 on CPU) and reports the median tokens/s over the steps after compilation. The pipeline rows read the
same shards through `BatchStream` (memory-mapped Arrow, background prefetch) with no training at all; the
ratio to the trainer's batches/s should be >= 10, so the input never limits training. Synthetic shards (random
tokens in the shard schema) are used when no real ones are given: the speed of either part does not depend on
the text. On a GPU, a glam-0.1b-64e-shaped run (bfloat16, batch 16 x 1024) adds tokens/s and model FLOP utilisation.

`--save-gb` (default 2): the time the training loop is blocked in `Checkpointer.save()` for a synthetic state of that
size, asynchronous (the default: the call returns once the arrays are copied off the devices) against synchronous
(the call returns once the files are written and recorded), each into a fresh folder, the same state.

The trainer's achieved model FLOP/s (model FLOPs per token x tokens/s) is also divided by this machine's float32
matmul peak, measured in the same run (the best of several large jitted matmuls): the share of what the hardware
demonstrably does, rather than of a nominal clock x FMA-width figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import numpy as np
import pyarrow as pa

from data_specs.shards import SHARD_SCHEMA, ComponentMix, ShardInfo, ShardManifest


def synthetic_shards(out: Path, rows: int, seq_len: int, vocab: int, seed: int = 0) -> Path:
    """Random-token shards in the mixing job's format: documents of 50..2000 tokens, packed, two components."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    for split, n_rows in (("train", rows), ("validation", max(64, rows // 50))):
        records, doc = [], 0
        for _ in range(n_rows):
            tokens = rng.integers(3, vocab, seq_len, dtype=np.int32)
            cuts = np.sort(rng.choice(np.arange(1, seq_len), size=rng.integers(0, 3), replace=False))
            seg = np.zeros(seq_len, np.int32)
            seg[cuts] = 1
            seg = np.cumsum(seg) + 1
            starts = np.concatenate([[0], cuts])
            pos = np.arange(seq_len) - starts[seg - 1]
            n = int(seg[-1])
            records.append({"tokens": tokens, "segment_ids": seg, "positions": pos.astype(np.int32),
                            "segment_doc_ids": [f"doc{doc + i}" for i in range(n)],
                            "segment_components": [["web", "books"][(doc + i) % 2] for i in range(n)]})
            doc += n
        name = f"{split}-00000.arrow"
        table = pa.Table.from_pylist(records, schema=SHARD_SCHEMA)
        with pa.OSFile(str(out / name), "wb") as sink, pa.ipc.new_file(sink, SHARD_SCHEMA) as writer:
            writer.write_table(table)
        shards.append(ShardInfo(name, split, n_rows, n_rows * seq_len, "synthetic"))
    components = {c: ComponentMix(0.5, rows * seq_len // 2, rows * seq_len // 2, 1.0, rows) for c in ("books", "web")}
    manifest = ShardManifest(seq_len, seed, "synthetic", "synthetic", {}, tuple(shards), components)
    (out / "manifest.json").write_text(manifest.to_json())
    return out


def matmul_peak(n: int = 2048, repeats: int = 7) -> float:
    """FLOP/s of the fastest of `repeats` jitted float32 [n, n] @ [n, n] matmuls (after one warm-up call)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    jax.block_until_ready(matmul(a, b))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(matmul(a, b))
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def save_blocking(gb: float, work: Path) -> dict[str, float]:
    """Seconds `save()` blocks the caller, async vs sync, and the async save's time until it is on disk."""
    import jax
    import jax.numpy as jnp

    from train.checkpoint import Checkpointer

    per = 128 * 2**20 // 4  # 128 MiB float32 arrays
    count = max(1, round(gb * 2**30 / (per * 4)))
    state = {f"w{i:02d}": jax.random.normal(jax.random.key(i), (per,), jnp.float32) for i in range(count)}
    jax.block_until_ready(state)
    out = {"bytes": float(count * per * 4)}
    for name, async_save in (("sync", False), ("async", True)):
        ckpt = Checkpointer(work / f"save-{name}", keep=1, verify="size", async_save=async_save)
        t = time.perf_counter()
        ckpt.save(1, state, {"data_position": 1})
        out[name] = time.perf_counter() - t
        ckpt.wait()
        out[f"{name}_on_disk"] = time.perf_counter() - t
        ckpt.close()
        shutil.rmtree(work / f"save-{name}", ignore_errors=True)
    return out


def pipeline_rate(shards: Path, batch: int, seq_len: int, batches: int) -> tuple[float, float]:
    """(batches/s of raw reads, batches/s through the prefetching stream)."""
    from train.data import BatchOrder, BatchStream, ShardSplit

    split = ShardSplit(shards, "train", seq_len)
    order = BatchOrder(len(split), batch, seed=0)
    t = time.perf_counter()
    for k in range(batches):
        split.read(order.rows(k))
    raw = batches / (time.perf_counter() - t)
    with BatchStream(split, order, start=batches, prefetch=4) as stream:
        next(stream)
        t = time.perf_counter()
        for _ in range(batches):
            next(stream)
        streamed = batches / (time.perf_counter() - t)
    return raw, streamed


def trainer_rate(shards: Path, overrides: dict, run_dir: Path) -> dict:
    """Median tokens/s and MFU of the real trainer, compilation and the final step (eval, save) excluded."""
    from train.config import load_train_spec
    from train.loop import Trainer

    spec = load_train_spec("tiny", overrides)
    trainer = Trainer(spec, run_dir, shards, tensorboard=False)
    t = time.perf_counter()
    trainer.run()
    total = time.perf_counter() - t
    timings = [json.loads(x) for x in (run_dir / "timings.jsonl").read_text().splitlines()]
    steady = [r for r in timings if 2 < r["step"] < spec.steps] or timings[-1:]
    return {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
            "mfu": statistics.median(r["mfu"] for r in steady), "seconds": total,
            "batch": spec.batch_size, "seq_len": spec.seq_len, "model": spec.model,
            "flops_per_token": trainer.flops_per_token, "peak": trainer.peak_flops}


def main(argv: list[str] | None = None) -> int:
    import jax

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--shards", type=Path, default=None, help="a shard folder (default: the demo's, else synthetic)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--pipeline-batches", type=int, default=200)
    p.add_argument("--save-gb", type=float, default=2.0, help="synthetic state size for the save benchmark (0: skip)")
    args = p.parse_args(argv)
    import flax

    dev = jax.devices()[0]
    print(f"jax {jax.__version__}, flax {flax.__version__}, backend {jax.default_backend()}, "
          f"device {dev.device_kind} x{jax.device_count()}, {len(os.sched_getaffinity(0))} CPU cores")
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    shards = args.shards
    if shards is None and Path("runs/demo/shards/manifest.json").exists():
        shards = Path("runs/demo/shards")
    if shards is None:
        shards = synthetic_shards(work / "shards", rows=4096, seq_len=256, vocab=8000)
        print("shards: synthetic (random tokens, shard schema), 4096 x 256")
    else:
        print(f"shards: {shards}")

    cpu = {"steps": args.steps, "log_every": 1, "eval_every": 10**9, "eval_batches": 0,
           "checkpoint.every": 10**9, "checkpoint.keep": 1}
    runs = [("tiny (tiny-moe, float32)", shards, cpu)]
    if jax.default_backend() == "gpu":
        big = synthetic_shards(work / "shards-1024", rows=2048, seq_len=1024, vocab=32_000)
        gpu = {**cpu, "model": "glam-0.1b-64e", "model_overrides": {}, "batch_size": 16, "seq_len": 1024,
               "activation_dtype": "bfloat16", "mesh.data": -1}
        runs.append(("glam-0.1b-64e (bfloat16)", big, gpu))

    peak = matmul_peak()
    print(f"float32 matmul peak (2048^3, best of 7): {peak / 1e9:.1f} GFLOP/s")
    rows = []
    for name, shard_dir, overrides in runs:
        r = trainer_rate(shard_dir, overrides, work / name.split()[0])
        batches_per_s = r["tokens_per_s"] / (r["batch"] * r["seq_len"])
        raw, streamed = pipeline_rate(shard_dir, r["batch"], r["seq_len"], args.pipeline_batches)
        rows.append((name, r, batches_per_s, raw, streamed))

    print("\n| run | batch | tokens/s | trainer batches/s | model GFLOP/s | of measured matmul peak | MFU | "
          "pipeline batches/s (read / prefetched) | pipeline ÷ trainer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r, bps, raw, streamed in rows:
        achieved = r["flops_per_token"] * r["tokens_per_s"]
        print(f"| {name} | {r['batch']}x{r['seq_len']} | {r['tokens_per_s']:,.0f} | {bps:.2f} | "
              f"{achieved / 1e9:.1f} | {achieved / peak:.2f} | {r['mfu']:.1%} | "
              f"{raw:,.0f} / {streamed:,.0f} | {min(raw, streamed) / bps:,.0f}x |")
    print("MFU = model FLOPs/token (model.info) x tokens/s / peak; CPU peak is an estimate (cores x clock x "
          "FMA width), GPU peak the dense bf16 number for the device.")
    if args.save_gb > 0:
        saved = save_blocking(args.save_gb, work)
        print(f"\n| checkpoint save of {saved['bytes'] / 2**30:.1f} GiB | loop blocked in save() (s) | "
              "until on disk (s) |\n|---|---|---|")
        for name in ("sync", "async"):
            print(f"| {name} | {saved[name]:.2f} | {saved[name + '_on_disk']:.2f} |")
        print(f"async blocks the loop {saved['async'] / saved['sync']:.0%} as long as sync (target <= 20%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
