"""GLaM's data-quality study: two arms that differ only in the web component (quality-filtered vs unfiltered),
same budget, weights, tokenizer, preset, steps and tasks; N training seeds per arm.

It drives the recipe's own stages through the stage runner and reimplements none of them:

    STUDY/common/            sources, tasks, classifier (shared: the arms read the same documents)
    STUDY/<arm>/             curated, tokenizer, shards, report for the arm's mixture (web filtered or not);
                             sources/tasks/classifier are links to common/, so the runner skips them
    STUDY/<arm>/seed-<s>/    train (the train spec with seed s) and eval
    STUDY/study.json, study.html

The second arm names the first arm's tokenizer as its pre-trained model, so both arms tokenize identically.
"""

from __future__ import annotations

import json
import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from data_specs import io as fileio
from data_specs import specs
from data_specs.loader import to_plain
from data_specs.specs import StudySpec
from data_specs.stages import RunLayout, Stage, StageArgs
from eval.harness import metric_values, task_manager
from eval.run import eval_stage
from eval.task_files import study_group
from glamkit.recipe import layout
from report.study import verdict, write_report
from train import stage as train_stage

SHARED = ("sources", "tasks", "classifier")


def arm_mixture(base: dict[str, Any], quality_filter_web: bool, tokenizer_model: Path | None) -> dict[str, Any]:
    """The mixture of one arm: the base mixture with only web's quality filter (and the shared tokenizer) set."""
    spec = json.loads(json.dumps(base))
    spec["components"]["web"]["quality_filter"] = quality_filter_web
    if tokenizer_model is not None:
        spec["tokenizer"] = {**spec["tokenizer"], "kind": "pretrained", "pretrained": str(tokenizer_model)}
    return spec


def _link_shared(common: Path, arm_dir: Path) -> None:
    arm_dir.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        link = arm_dir / name
        if not link.exists() and (common / name).exists():
            os.symlink(os.path.relpath(common / name, arm_dir), link)


def seed_layout(arm_dir: Path, study: StudySpec, seed: int) -> RunLayout:
    """One seed of an arm: the train stage on the arm's shards (train.stage, standalone, the seed set on the train
    spec), then eval on the arm's tokenizer and tasks (its upstream train stage in this layout, the others not)."""
    args = StageArgs(study.mixture, study.train, arm_dir, standalone=True, overrides={"seed": seed})
    return RunLayout(arm_dir / f"seed-{seed}", [
        train_stage.make_stage(args),
        Stage("eval", partial(eval_stage, task_names=tuple(study.tasks), limit=study.eval_limit,
                              tokenizer_dir=arm_dir / "tokenizer", tasks_dir=arm_dir / "tasks"),
              config={"tasks": list(study.tasks), "limit": study.eval_limit}, needs=("train",), version="2",
              description="evaluate one seed (lm-evaluation-harness)"),
    ])


def prepare_arms(study: StudySpec, study_dir: Path) -> list[Path]:
    """The shared stages, then each arm's mixture through the `report` stage (curated ... shards): the arms' folders."""
    base_path = specs.spec_path("mixtures", study.mixture)
    base = to_plain(specs.load("mixtures", base_path))
    common = study_dir / "common"
    layout(common, base_path).run(only=list(SHARED))
    tokenizer_model: Path | None = None
    arm_dirs = []
    for arm in study.arms:
        arm_dir = study_dir / arm.name
        _link_shared(common, arm_dir)
        spec_file = study_dir / f"mixture-{arm.name}.yaml"
        fileio.write_text(spec_file, yaml.safe_dump(arm_mixture(base, arm.quality_filter_web, tokenizer_model),
                                                    sort_keys=False))
        print(f"study {study.name}: arm {arm.name} (web quality filter {'on' if arm.quality_filter_web else 'off'})")
        layout(arm_dir, spec_file).run(only=["report"])
        if tokenizer_model is None:
            tokenizer_model = (arm_dir / "tokenizer" / "tokenizer.model").resolve()
        arm_dirs.append(arm_dir)
    return arm_dirs


def run_study(study_spec: str | Path, study_dir: Path) -> dict[str, Any]:
    """Run (or resume: finished stages are skipped) every arm and seed, then write study.json and study.html."""
    study = specs.load("studies", study_spec)
    for arm_dir in prepare_arms(study, study_dir):
        print(f"arm {arm_dir.name}")
        for seed in study.seeds:
            print(f"  seed {seed}")
            seed_layout(arm_dir, study, seed).run()
    summary = summarise(study, study_dir)
    fileio.write_json(study_dir / "study.json", summary, sort_keys=True, indent=2)
    write_report(summary, study_dir / "study.html")
    return summary


# ------------------------------------------------------------------------------------------------ summary
def _ci(values: list[float], confidence: float) -> tuple[float, float, float]:
    from scipy import stats

    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return mean, mean - half, mean + half


def _results(study_dir: Path, arm: str, seed: int) -> dict[str, Any]:
    return json.loads((study_dir / arm / f"seed-{seed}" / "eval" / "results.json").read_text())


def summarise(study: StudySpec, study_dir: Path) -> dict[str, Any]:
    """One row per (task, metric) of lm-eval's results (tags expanded, as evaluated), grouped NLG/NLU/LM by the
    task's tag in the shared tasks folder."""
    from scipy import stats

    arms = [a.name for a in study.arms]
    manager = task_manager(study_dir / "common" / "tasks")
    first = _results(study_dir, arms[0], study.seeds[0])
    values = {(arm, seed): metric_values(_results(study_dir, arm, seed)) for arm in arms for seed in study.seeds}
    rows = []
    for task_name, metrics in metric_values(first).items():
        for metric in metrics:
            higher_is_better = bool(first["higher_is_better"][task_name][metric.split(",")[0]])
            per_arm = {}
            for arm in arms:
                vals = [values[(arm, seed)][task_name][metric] for seed in study.seeds]
                mean, lo, hi = _ci(vals, study.confidence)
                per_arm[arm] = {"values": vals, "mean": mean, "ci_low": lo, "ci_high": hi}
            a, b = (per_arm[arms[0]]["values"], per_arm[arms[1]]["values"])
            diff = float(np.mean(a) - np.mean(b))
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue) if len(a) > 1 and np.std(a) + np.std(b) > 0 \
                else float("nan")
            better = arms[0] if (diff > 0) == higher_is_better else arms[1]
            rows.append({"task": task_name, "group": study_group(manager, task_name), "metric": metric,
                         "higher_is_better": higher_is_better, "arms": per_arm, "difference": diff,
                         "p_value": p, "significant": bool(p < 1 - study.confidence) if not math.isnan(p) else False,
                         "better": better if diff != 0 else None})
    curves = {arm: {str(seed): _curve(study_dir / arm / f"seed-{seed}" / "train" / "metrics.jsonl")
                    for seed in study.seeds} for arm in arms}
    return {"study": study.name, "arms": arms, "seeds": list(study.seeds), "confidence": study.confidence,
            "rows": rows, "curves": curves, "verdict": verdict(rows, arms, study.confidence)}


def _curve(path: Path) -> dict[str, list[float]]:
    steps, loss, val_steps, val = [], [], [], []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        steps.append(rec["step"])
        loss.append(rec["loss"])
        if "val_loss" in rec:
            val_steps.append(rec["step"])
            val.append(rec["val_loss"])
    return {"step": steps, "loss": loss, "val_step": val_steps, "val_loss": val}
