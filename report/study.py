"""Summarise a study: per task each arm's mean and 95% confidence interval over seeds, the difference and a Welch
t-test, NLG and NLU grouped; both arms' training curves. States the result as it is, significant or not."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from data_specs import io as fileio
from data_specs.specs import StudySpec
from report.png import png_base64, pyplot


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

    from eval.harness import metric_values, task_manager
    from eval.task_files import study_group

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


def verdict(rows: list[dict[str, Any]], arms: list[str], confidence: float) -> str:
    lines = []
    for group in ("nlg", "nlu", "lm"):
        group_rows = [r for r in rows if r["group"] == group]
        if not group_rows:
            continue
        sig = [r for r in group_rows if r["significant"]]
        wins = {a: sum(1 for r in group_rows if r["better"] == a) for a in arms}
        text = ", ".join(f"{a} better on {n}" for a, n in wins.items())
        if sig:
            detail = "; ".join(f"{r['task']} {r['metric']}: {r['better']} (p={r['p_value']:.3f})" for r in sig)
            lines.append(f"{group.upper()}: {text} of {len(group_rows)} metrics; significant at "
                         f"{confidence:.0%}: {detail}.")
        else:
            lines.append(f"{group.upper()}: {text} of {len(group_rows)} metrics; no difference is significant at "
                         f"{confidence:.0%} with {len(next(iter(group_rows[0]['arms'].values()))['values'])} seeds.")
    return " ".join(lines)


def write_report(summary: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    colors = dict(zip(summary["arms"], ("tab:green", "tab:red"), strict=False))
    fig, ax = plt.subplots(figsize=(8, 4))
    for arm, seeds in summary["curves"].items():
        for i, curve in enumerate(seeds.values()):
            ax.plot(curve["step"], curve["loss"], color=colors[arm], alpha=0.35, lw=1)
            if curve["val_step"]:
                ax.plot(curve["val_step"], curve["val_loss"], color=colors[arm], marker="o", lw=2,
                        label=f"{arm} validation" if i == 0 else None)
    ax.set(xlabel="step", ylabel="loss (nats/token)", title="Training (thin) and validation (dots) loss per seed")
    ax.legend()
    curves_png = png_base64(fig, dpi=100)

    n = len(summary["rows"])
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    for ax, row in zip(axes[0], summary["rows"], strict=True):
        for x, arm in enumerate(summary["arms"]):
            a = row["arms"][arm]
            err = [[a["mean"] - a["ci_low"]], [a["ci_high"] - a["mean"]]] if not math.isnan(a["ci_low"]) else None
            ax.errorbar([x], [a["mean"]], yerr=err, fmt="o", color=colors[arm], capsize=5)
            ax.scatter([x] * len(a["values"]), a["values"], color=colors[arm], alpha=0.4, s=12)
        ax.set_xticks(range(len(summary["arms"])), summary["arms"])
        ax.set_xlim(-0.6, len(summary["arms"]) - 0.4)
        ax.set_title(f"{row['task']}\n{row['metric']} ({row['group'].upper()})", fontsize=9)
    fig.tight_layout()
    tasks_png = png_base64(fig, dpi=100)

    def fmt(a: dict[str, Any]) -> str:
        return f"{a['mean']:.4f} [{a['ci_low']:.4f}, {a['ci_high']:.4f}]"

    rows_html = "".join(
        f"<tr><td>{r['group'].upper()}</td><td>{html.escape(r['task'])}</td><td>{r['metric']}"
        f"{' ↑' if r['higher_is_better'] else ' ↓'}</td>"
        + "".join(f"<td>{fmt(r['arms'][a])}</td>" for a in summary["arms"])
        + f"<td>{r['difference']:+.4f}</td><td>{r['p_value']:.3f}</td>"
        f"<td>{'yes' if r['significant'] else 'no'}</td></tr>"
        for r in sorted(summary["rows"], key=lambda r: (r["group"], r["task"])))
    arms = summary["arms"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Study {html.escape(summary['study'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+3){{text-align:left}}</style></head>
<body><h1>Data-quality study: {html.escape(summary['study'])}</h1>
<p>Arms: {', '.join(arms)}; they differ only in the web component's quality filter. Seeds per arm:
{len(summary['seeds'])}. Intervals are {summary['confidence']:.0%} t-intervals over seeds; p-values from Welch's
t-test on the per-seed values; difference = {arms[0]} − {arms[1]}.</p>
<p><b>Result:</b> {html.escape(summary['verdict'])}</p>
<table><tr><th>group</th><th>task</th><th>metric</th>{''.join(f'<th>{a}</th>' for a in arms)}
<th>difference</th><th>p</th><th>significant</th></tr>{rows_html}</table>
<h2>Per task</h2><img alt="tasks" src="data:image/png;base64,{tasks_png}">
<h2>Training curves</h2><img alt="curves" src="data:image/png;base64,{curves_png}">
</body></html>"""
    fileio.write_text(path, page)
