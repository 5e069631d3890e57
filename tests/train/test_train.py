"""End-to-end training on the real demo shards: it learns, skips NaN steps, and matches across meshes."""

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.train.conftest import FAST
from train.metrics import read_metrics


@pytest.mark.slow
def test_cli_run_learns_more_than_token_frequencies(demo_shards, tmp_path, capsys):
    from glamkit.commands import train as cli
    from train.data import ShardSplit, unigram_entropy

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    settings = {**FAST, "seq_len": 64, "steps": 150, "eval_every": 50, "eval_batches": 4, "log_every": 10,
                "optimizer.learning_rate": 0.03, "checkpoint.every": 50}
    argv = ["train", "--config", "tiny", "--run", str(tmp_path / "run"), "--shards", str(demo_shards),
            "--no-progress", *(x for k, v in settings.items() for x in ("--set", f"{k}={v}"))]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    entropy = unigram_entropy(ShardSplit(demo_shards, "train"))
    val = printed["validation"]
    assert val["val_loss"] <= entropy - 0.3, (val, entropy)
    components = {k for k in val if k.startswith("val_loss/")}
    assert len(components) >= 3  # per-component validation from the shards' segment metadata
    run = tmp_path / "run"
    records = read_metrics(run)
    assert records[-1]["step"] == 150 and records[0]["step"] == 1 and records[-1]["loss"] < records[0]["loss"]
    assert np.asarray(records[-1]["expert_load"]).shape == (2, 16)  # per MoE layer, per expert
    assert {"ce", "lb", "router_z", "logit_z", "lr", "grad_norm", "skipped"} <= set(records[-1])
    assert "steps: 150" in (run / "config.yaml").read_text()  # the resolved config, overrides applied
    assert "learning_rate: 0.03" in (run / "config.yaml").read_text()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    timings = [json.loads(line) for line in (run / "timings.jsonl").read_text().splitlines()]
    assert timings[-1]["tokens_per_s"] > 0 and 0 < timings[-1]["mfu"] < 1


@pytest.mark.slow
def test_nan_batch_is_skipped_counted_and_training_continues(demo_shards, tmp_path, monkeypatch):
    from train.config import load_train_spec
    from train.data import BatchStream
    from train.loop import Trainer

    original = BatchStream.batch

    def poisoned(self, k):
        batch = original(self, k)
        if k == 2:  # the third step's batch
            batch["weights"] = np.full_like(batch["weights"], np.nan)
        return batch

    monkeypatch.setattr(BatchStream, "batch", poisoned)
    spec = load_train_spec("tiny", {**FAST, "seq_len": 32, "steps": 4, "checkpoint.every": 1, "checkpoint.keep": 4})
    trainer = Trainer(spec, tmp_path / "run", demo_shards, tensorboard=False)
    summary = trainer.run()
    assert summary["skipped_steps"] == 1 and summary["steps"] == 4
    records = read_metrics(tmp_path / "run")
    assert [r["nonfinite"] for r in records] == [False, False, True, False]
    assert [r["skipped"] for r in records] == [0, 0, 1, 1]
    assert np.isfinite(records[3]["loss"]) and records[3]["loss"] < records[0]["loss"]

    import jax
    import orbax.checkpoint as ocp

    def params_at(step):
        manager = ocp.CheckpointManager((tmp_path / "run" / "checkpoints").absolute())
        args = ocp.args.Composite(state=ocp.args.StandardRestore(trainer.abstract))
        return jax.tree.leaves(manager.restore(step, args=args)["state"]["params"])

    same = [np.array_equal(a, b) for a, b in zip(params_at(2), params_at(3), strict=True)]
    assert all(same)  # the NaN step changed no parameter
    assert not all(np.array_equal(a, b) for a, b in zip(params_at(3), params_at(4), strict=True))


MESH_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    from train.config import load_train_spec
    from train.loop import Trainer
    from train.metrics import read_metrics
    assert jax.device_count() == 8, jax.devices()
    shards, out = sys.argv[1], sys.argv[2]
    settings = json.loads(sys.argv[3])
    losses = {}
    for name, mesh in (("single", (1, 1, 1)), ("mesh", (2, 4, 1))):
        spec = load_train_spec("tiny", {**settings, "mesh.data": mesh[0], "mesh.expert": mesh[1],
                                        "mesh.model": mesh[2]})
        trainer = Trainer(spec, f"{out}/{name}", shards, tensorboard=False)
        if name == "mesh":
            wi = trainer.abstract["params"]["layers"]["blocks"][1]["ffn"]["wi"]  # [layers, experts, M, H]
            assert wi.sharding.shard_shape(wi.shape)[1] == 4, wi.sharding  # 16 experts over 4 devices
            stats = [x for x in jax.tree.leaves(trainer.abstract["opt"]) if x.ndim == 3 and x.shape[1] == 16]
            assert stats and all("expert" in str(x.sharding.spec) for x in stats), stats
        trainer.run()
        losses[name] = [(r["loss"], r["ce"], r["grad_norm"]) for r in read_metrics(f"{out}/{name}")]
    print("LOSSES " + json.dumps(losses))
""")


@pytest.mark.slow
def test_data2_expert4_mesh_matches_one_device(demo_shards, tmp_path):
    settings = {**FAST, "seq_len": 32, "steps": 3, "checkpoint.every": 100}
    env = {**os.environ, "PYTHONPATH": str(REPO), "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    proc = subprocess.run([sys.executable, "-c", MESH_SCRIPT, str(demo_shards), str(tmp_path), json.dumps(settings)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = json.loads(proc.stdout.split("LOSSES ", 1)[1])
    single, mesh = np.array(losses["single"]), np.array(losses["mesh"])
    assert single.shape == (3, 3)
    np.testing.assert_allclose(mesh, single, rtol=2e-4, atol=2e-4)


@pytest.mark.slow
def test_stage_writes_deterministic_artefacts_into_the_stage_folder(demo_shards, tmp_path):
    from data_specs.stages import RunLayout, Stage
    from train.stage import train_stage

    overrides = {**FAST, "seq_len": 32, "steps": 2}
    stage = Stage("train", lambda ctx: train_stage(ctx, "tiny", demo_shards, overrides, progress=False),
                  config=overrides)
    [result] = RunLayout(tmp_path / "run", [stage]).run()
    out = Path(result.path)
    assert result.summary["steps"] == 2 and result.summary["last_loss"] < result.summary["first_loss"]
    assert (out / "config.yaml").exists() and (out / "checkpoints" / "2" / "state").is_dir()
    assert result.summary["checkpoint"] == "checkpoints/2"
    # Orbax's own layout: plain Orbax, knowing nothing of glamkit, restores the parameters.
    import orbax.checkpoint as ocp

    from eval.model_loader import load_trained

    restored = ocp.CheckpointManager((out / "checkpoints").absolute()).restore(2)
    _, params, _ = load_trained(out)
    plain = nnx_pure(restored["state"]["params"])
    for a, b in zip(jax_leaves(plain), jax_leaves(nnx_pure(params)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [r["step"] for r in read_metrics(out)] == [1, 2]
    assert (tmp_path / "run" / "logs" / "train" / "timings.jsonl").exists()
    assert not (tmp_path / "run" / ".train-work").exists() or not any((tmp_path / "run" / ".train-work").iterdir())
    _scoring_drops_no_token(out)


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def nnx_pure(tree):
    from flax import nnx

    return nnx.to_pure_dict(tree) if isinstance(tree, nnx.State) else tree


def _scoring_drops_no_token(train_dir: Path) -> None:
    """The eval loader scores the trained checkpoint in dropless mode: no assignment is dropped where the
    training (capacity) mode drops some, so a prefix's log-likelihoods never depend on the tokens after it."""
    import dataclasses

    import jax.numpy as jnp
    from flax import nnx

    from eval.model_loader import load_trained, scoring_config
    from model.transformer import Transformer
    from train.config import model_config

    forward, params, spec = load_trained(train_dir)
    config = scoring_config(model_config(spec))
    assert config.dispatch == "dropless" and config.dtype == "float32"
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, config.vocab_size, (16, 64)))
    for cfg in (config, dataclasses.replace(config, dispatch="sort")):
        graphdef, _ = nnx.split(nnx.eval_shape(lambda cfg=cfg: Transformer(cfg, rngs=nnx.Rngs(0))))
        _, aux = nnx.merge(graphdef, params)(tokens)
        dropped = float(aux["dropped_fraction"].max())
        assert dropped == 0.0 if cfg.dispatch == "dropless" else dropped > 0.0, (cfg.dispatch, dropped)
    changed = tokens.at[:, 40:].set((tokens[:, 40:] + 1) % config.vocab_size)
    np.testing.assert_array_equal(np.asarray(forward(params, changed))[:, :40],
                                  np.asarray(forward(params, tokens))[:, :40])


@pytest.mark.slow
def test_bad_step_rolls_back_to_the_last_checkpoint_and_skips_the_batches_since(demo_shards, tmp_path, monkeypatch):
    from train.config import load_train_spec
    from train.data import BatchStream
    from train.loop import Trainer

    original = BatchStream.batch

    def poisoned(self, k):
        batch = original(self, k)
        if k == 7:  # with NaN skipping off, the update is applied: the paper's "restart from a healthy checkpoint"
            batch["weights"] = np.full_like(batch["weights"], np.nan)
        return batch

    monkeypatch.setattr(BatchStream, "batch", poisoned)
    spec = load_train_spec("tiny", {**FAST, "steps": 10, "checkpoint.every": 3, "rollback_spike_factor": 3.0,
                                    "skip_nonfinite": False})
    summary = Trainer(spec, tmp_path / "run", demo_shards, tensorboard=False).run()
    assert summary["rollbacks"] == 1 and summary["steps"] == 10 and summary["skipped_steps"] == 0
    # Steps 1-6 used batches 0-5; batches 6 and 7 (since the checkpoint at step 6) are skipped; 7-10 use 8-11.
    assert summary["data_position"] == 12
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 11))
    assert all(np.isfinite(r["loss"]) for r in records) and records[-1]["loss"] < records[5]["loss"]
    assert records[-1]["rollbacks"] == 1


@pytest.mark.slow
def test_gradient_accumulation_matches_one_large_batch(demo_shards, tmp_path):
    from train.config import load_train_spec
    from train.loop import Trainer

    results = {}
    for accum in (1, 2):
        spec = load_train_spec("tiny", {**FAST, "steps": 2, "grad_accum": accum, "checkpoint.every": 100,
                                        "eval_batches": 0})
        Trainer(spec, tmp_path / str(accum), demo_shards, tensorboard=False).run()
        results[accum] = read_metrics(tmp_path / str(accum))
    one, two = results[1][0], results[2][0]
    # Same rows, same parameters; only the MoE routing groups differ (128 vs 256 tokens, so capacity drops
    # differ slightly). Summing instead of averaging micro-batches would double every term.
    assert abs(two["ce"] - one["ce"]) < 0.02 and abs(two["lb"] - one["lb"]) < 0.2 * one["lb"]
    assert abs(two["grad_norm"] - one["grad_norm"]) < 0.05 * one["grad_norm"]
