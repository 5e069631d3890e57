"""Summarise a study: per task each arm's mean and 95% confidence interval over seeds, the difference and a Welch
t-test, NLG and NLU grouped; both arms' training curves. States the result as it is, significant or not."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from report.png import png_base64, pyplot


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
