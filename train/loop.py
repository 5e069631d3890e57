"""The training loop: resume, step, log, evaluate, checkpoint, stop cleanly on SIGTERM, roll back on spikes.

    trainer = Trainer(load_train_spec("tiny"), run_dir="runs/x/train", shards_dir="runs/x/shards")
    summary = trainer.run()

A run folder holds `config.yaml` (the resolved spec), `metrics.jsonl`, `timings.jsonl`, `tensorboard/` and
`checkpoints/<step>/` (Orbax's layout). Run it again and it resumes from the newest intact checkpoint:
parameters, optimizer state, step, RNG and data position are restored straight into their sharded places (the
state is never built twice), so the losses from there on are exactly those of an uninterrupted run.

On several hosts every decision that changes what the next collective is (stop on SIGTERM, roll back on a spike,
which checkpoint to resume) is taken together (train/hosts.py), so no host waits alone in a collective.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import jax
import numpy as np

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.specs import TrainSpec
from model.info import model_info
from train.checkpoint import Checkpointer
from train.config import check_spec, model_config, resolved_yaml, spec_hash
from train.data import BatchOrder, BatchStream, ShardSplit, validation_batches
from train.hosts import PreemptionWatch, from_primary, is_primary
from train.mesh import batch_sharding, build_mesh, data_parallel_size, global_batch
from train.metrics import MetricsLogger, peak_flops_per_device, read_metrics
from train.optim import make_optimizer, make_schedule
from train.step import init_state, make_eval_step, make_train_step, state_layout

log = logging.getLogger(__name__)
SPIKE_WINDOW = 20  # steps of loss history a spike is measured against
MIN_HISTORY = 5  # steps of history before spikes are looked for


class Trainer:
    def __init__(self, spec: TrainSpec, run_dir: str | Path, shards_dir: str | Path | None = None,
                 progress: bool = False, tensorboard: bool = True):
        check_spec(spec)
        self.spec = spec
        self.run_dir = Path(run_dir)
        shards = shards_dir or spec.shards
        if not shards:
            raise GlamkitError("no shards: give a shard folder (--shards) or set `shards` in the train spec")
        self.shards_dir = Path(shards)
        self.progress = progress
        self.config = model_config(spec)
        self.mesh = build_mesh(spec.mesh)
        dp = data_parallel_size(self.mesh)
        if (spec.batch_size // spec.grad_accum) % dp:
            raise GlamkitError(f"micro-batch {spec.batch_size // spec.grad_accum} rows cannot be split over "
                               f"{dp} data-parallel devices (mesh data x expert)")
        self.train_split = ShardSplit(self.shards_dir, "train", spec.seq_len)
        self.order = BatchOrder(len(self.train_split), spec.batch_size, spec.seed, jax.process_index(),
                                jax.process_count())
        self.tx = make_optimizer(spec.optimizer, spec.steps)
        self.schedule = make_schedule(spec.optimizer, spec.steps)
        self.graphdef, self.abstract, self.shardings = state_layout(self.config, self.mesh, self.tx)
        self.train_step = make_train_step(self.graphdef, self.tx, self.schedule, spec.loss, spec.grad_accum,
                                          spec.skip_nonfinite, self.shardings, batch_sharding(self.mesh))
        self.val_split: ShardSplit | None = None
        if self.train_split.manifest.split_files("validation"):
            self.val_split = ShardSplit(self.shards_dir, "validation", spec.seq_len)
        self.eval_step = make_eval_step(self.graphdef, len(self.train_split.components), spec.loss)
        self.is_main = is_primary()
        self.metrics = MetricsLogger(self.run_dir, tensorboard=tensorboard, enabled=self.is_main)
        self.checkpoints = Checkpointer(self.run_dir / "checkpoints", spec.checkpoint.keep, spec.checkpoint.verify)

        self.flops_per_token = model_info(self.config, spec.seq_len)["flops_per_token"]
        self.peak_flops = peak_flops_per_device(jax.devices()[0], spec.peak_flops_per_device) * jax.device_count()

    # ----------------------------------------------------------------------------------------------- state
    def restore_or_init(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(train state, meta) from the newest intact checkpoint, or fresh at step 0."""
        restored = self.checkpoints.restore_latest(self.abstract)
        if restored is None:
            _, state, _ = init_state(self.config, self.mesh, self.tx, self.spec.seed)
            return state, {"step": 0, "data_position": 0, "rollbacks": 0}
        step, state, meta = restored
        if meta.get("spec_hash") not in (None, spec_hash(self.spec)):
            raise GlamkitError(f"{self.run_dir}: the checkpoints were made with a different train config; "
                               "use a new run folder (or the original config)")
        log.info("resuming from step %d (data position %d)", step, meta["data_position"])
        return state, meta

    def save(self, state: dict[str, Any], step: int, position: int, rollbacks: int, history: deque[float]) -> None:
        meta = {"step": step, "data_position": position, "rollbacks": rollbacks, "spec_hash": spec_hash(self.spec),
                "loss_history": list(history)}  # so spike detection after a resume sees what it would have seen
        self.checkpoints.save(step, state, meta)

    # -------------------------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        """Train to `spec.steps` (or until SIGTERM); returns a JSON-able summary."""
        spec = self.spec
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            fileio.write_text(self.run_dir / "config.yaml", resolved_yaml(spec, self.shards_dir))
        state, meta = self.restore_or_init()
        step, position, rollbacks = int(meta["step"]), int(meta["data_position"]), int(meta.get("rollbacks", 0))
        self.metrics.truncate_after(step)
        first_loss = last_loss = None
        history: deque[float] = deque(meta.get("loss_history", ()), maxlen=SPIKE_WINDOW)
        preemption = PreemptionWatch()
        stream = BatchStream(self.train_split, self.order, start=position, prefetch=spec.prefetch)
        bar = self._progress_bar(step)
        val: dict[str, float] = {}
        interrupted = False
        tick, tick_step = time.perf_counter(), step
        try:
            while step < spec.steps:
                k, local = next(stream)
                state, out = self.train_step(state, global_batch(local, self.mesh))
                step += 1
                evaluating = step % spec.eval_every == 0 or step == spec.steps
                want_log = step % spec.log_every == 0 or step == 1 or evaluating
                checking = spec.rollback_spike_factor is not None
                if want_log or checking:
                    out = jax.device_get(out)
                    loss = float(out["loss"])
                    if checking and from_primary(self._is_spike(loss, history)):  # every host rolls back
                        state, meta = self._rollback(step, loss)
                        step, rollbacks = int(meta["step"]), rollbacks + 1
                        stream.close()
                        stream = BatchStream(self.train_split, self.order, start=k + 1, prefetch=spec.prefetch)
                        history = deque(meta.get("loss_history", ()), maxlen=SPIKE_WINDOW)
                        self.metrics.truncate_after(step)
                        bar.reset(total=spec.steps)
                        bar.update(step)
                        continue
                    if bool(out["finite"]):
                        history.append(loss)
                    first_loss = loss if first_loss is None else first_loss
                    last_loss = loss
                bar.update(1)
                if evaluating:
                    val = self.evaluate(state["params"])
                if want_log:
                    now = time.perf_counter()
                    tokens_per_s = (step - tick_step) * spec.batch_size * spec.seq_len / max(now - tick, 1e-9)
                    tick, tick_step = now, step
                    timings = {"tokens_per_s": tokens_per_s,
                               "mfu": tokens_per_s * self.flops_per_token / self.peak_flops}
                    self.metrics.log(step, self._record(out, rollbacks, val if evaluating else {}), timings)
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
                saving = step % spec.checkpoint.every == 0 or step == spec.steps
                if saving:
                    self.save(state, step, stream.position, rollbacks, history)
                if preemption.check() and step < spec.steps:  # True on every host at the same step
                    if not saving:
                        self.save(state, step, stream.position, rollbacks, history)
                    interrupted = True
                    log.warning("SIGTERM: saved a checkpoint at step %d and stopped", step)
                    break
            if not val and step >= spec.steps:  # nothing left to train: still report validation
                val = self.evaluate(state["params"])
        finally:
            stream.close()
            bar.close()
            self.metrics.close()
            preemption.close()
            self.checkpoints.wait()  # the last (asynchronous) save is on disk before we return or exit
        records = _read_losses(self.run_dir) if self.is_main else []
        return {
            "steps": step,
            "interrupted": interrupted,
            "first_loss": records[0] if records else first_loss,
            "last_loss": records[-1] if records else last_loss,
            "skipped_steps": int(jax.device_get(state["skipped"])),
            "rollbacks": rollbacks,
            "validation": val,
            "data_position": stream.position,
            "checkpoint": str(self.checkpoints.dir / str(step)),
            "checkpoints": str(self.checkpoints.dir),
        }

    def evaluate(self, params: Any) -> dict[str, float]:
        """Validation cross-entropy, overall and per mixture component, on a fixed set of batches, each run in
        `grad_accum` micro-batches like a training step (a whole batch at once would not fit where training
        needs accumulation)."""
        if self.val_split is None or self.spec.eval_batches < 1:
            return {}
        if not hasattr(self, "_val_batches"):
            self._val_batches = validation_batches(self.val_split, self.spec.batch_size, self.spec.eval_batches,
                                                   jax.process_index(), jax.process_count())
        total = count = 0.0
        sums = np.zeros(len(self.train_split.components))
        counts = np.zeros_like(sums)
        accum = self.spec.grad_accum
        for local in self._val_batches:
            for j in range(accum):
                micro = {k: v[j::accum] for k, v in local.items()}  # rows j, j + A, ... as in training
                out = jax.device_get(self.eval_step(params, global_batch(micro, self.mesh)))
                total += float(out["ce_sum"])
                count += float(out["tokens"])
                sums += out["component_sums"]
                counts += out["component_counts"]
        result = {"val_loss": total / max(count, 1.0)}
        for name, s, c in zip(self.train_split.components, sums, counts, strict=True):
            if c > 0:
                result[f"val_loss/{name}"] = float(s / c)
        return result

    # ------------------------------------------------------------------------------------------------ parts
    def _record(self, out: dict[str, Any], rollbacks: int, val: dict[str, float]) -> dict[str, Any]:
        keys = ("loss", "ce", "lb", "router_z", "logit_z", "grad_norm", "lr")
        record: dict[str, Any] = {k: float(out[k]) for k in keys}
        record.update({"skipped": int(out["skipped"]), "nonfinite": not bool(out["finite"]), "rollbacks": rollbacks,
                       "expert_load": np.asarray(out["expert_load"]),
                       "dropped_fraction": np.asarray(out["dropped_fraction"]),
                       "router_entropy": np.asarray(out["router_entropy"]), **val})
        return record

    def _is_spike(self, loss: float, history: deque[float]) -> bool:
        """A loss above factor x the recent mean, or a non-finite loss whose update was not skipped."""
        if not math.isfinite(loss):
            return not self.spec.skip_nonfinite  # a skipped step did no damage
        if len(history) < MIN_HISTORY:
            return False
        factor = self.spec.rollback_spike_factor or math.inf
        return loss > factor * (sum(history) / len(history))

    def _rollback(self, step: int, loss: float) -> tuple[dict[str, Any], dict[str, Any]]:
        restored = self.checkpoints.restore_latest(self.abstract)
        if restored is None:
            raise GlamkitError(f"loss spike at step {step} ({loss:.3f}) and no checkpoint to roll back to")
        log.warning("loss spike at step %d (%.3f): rolled back to step %d, skipping the batches since",
                    step, loss, restored[0])
        return restored[1], restored[2]

    def _progress_bar(self, start: int) -> Any:
        from tqdm import tqdm

        return tqdm(total=self.spec.steps, initial=start, desc=f"train {self.spec.name}", unit="step",
                    disable=not (self.progress and self.is_main), dynamic_ncols=True)


def _read_losses(run_dir: Path) -> list[float]:
    path = run_dir / "metrics.jsonl"
    return [r["loss"] for r in read_metrics(run_dir)] if path.exists() else []
