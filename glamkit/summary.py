"""The end-of-run summary `glamkit run` prints: one table from the artefacts the stages left in a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.harness import metric_values
from eval.task_files import HELDOUT_TASK
from filters.classifier_eval import auc_line
from pipelines.curate.schema import STATS_FILE


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def summarize(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    lines: list[str] = []
    curated = _load(run_dir / "curated" / STATS_FILE)
    manifest = _load(run_dir / "shards" / "manifest.json")
    if curated or manifest:
        lines.append(f"{'component':<14}{'read':>7}{'kept':>7}{'tokens':>11}{'target':>8}{'realised':>9}{'epochs':>8}")
        names = list((manifest or {}).get("components") or (curated or {}).get("components") or {})
        realised = (manifest or {}).get("extra", {}).get("realised_weight", {})
        for name in names:
            c = (curated or {}).get("components", {}).get(name, {})
            m = (manifest or {}).get("components", {}).get(name, {})
            lines.append(f"{name:<14}{c.get('read', ''):>7}{c.get('kept', ''):>7}{m.get('tokens', ''):>11}"
                         f"{m.get('target_weight', 0):>8.3f}{realised.get(name, 0):>9.3f}{m.get('epochs', 0):>8.3g}")
    clf = _load(run_dir / "classifier" / "eval.json")
    if clf:
        lines.append(f"classifier: {auc_line(clf)}")  # the held-out AUC never without its LOSO partner
    for comp, rule in ((curated or {}).get("keep_rules") or {}).items():
        c = curated["components"].get(comp, {})
        scored = sum(c.get("score_histogram", []))
        lines.append(f"keep rule ({comp}): {rule['applied']} (mixture: {rule['rule']}); kept {c.get('kept', 0):,} of "
                     f"{scored:,} pages that reached the quality score")
    train = (_load(run_dir / "train" / "_COMPLETE.json") or {}).get("summary")
    if train:
        val = train.get("validation", {}).get("val_loss")
        lines.append(f"train: {train['steps']} steps, loss {train['first_loss']:.3f} -> {train['last_loss']:.3f}"
                     + (f", validation loss {val:.3f}" if val is not None else ""))
    results = _load(run_dir / "eval" / "results.json")
    if results and "results" in results:  # lm-eval's results; the per-component heldout tasks are left to the file

        parts = [f"{task} {metric.split(',')[0]} {value:.3f}" for task, metrics in metric_values(results).items()
                 if not task.startswith(f"{HELDOUT_TASK}-") for metric, value in list(metrics.items())[:1]]
        lines.append("eval: " + ", ".join(parts))
    paths = (("mixture report", run_dir / "report.html"),
             ("train checkpoints (Orbax)", run_dir / "train" / "checkpoints"),
             ("train metrics", run_dir / "train" / "metrics.jsonl"),
             ("TensorBoard events", run_dir / "logs" / "train" / "tensorboard"),
             ("eval results", run_dir / "eval" / "results.json"))
    for label, path in paths:
        if path.exists():
            lines.append(f"{label}: {path}")
    return "\n".join(lines)
