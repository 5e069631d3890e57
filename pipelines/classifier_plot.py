"""The classifier evaluation figure: held-out ROC, leave-one-source-out AUCs, per-component score histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_eval(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (roc, loso, hist) = plt.subplots(1, 3, figsize=(16, 4.6))
    roc.plot(result["roc_curve"]["fpr"], result["roc_curve"]["tpr"], lw=2)
    roc.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    roc.set(title=f"Held-out ROC (AUC {result['roc_auc']:.3f}, PR-AUC {result['pr_auc']:.3f})",
            xlabel="false positive rate", ylabel="true positive rate")

    names = sorted(result["leave_one_source_out_roc_auc"])
    values = [result["leave_one_source_out_roc_auc"][n] for n in names]
    loso.barh(names, values, color="tab:orange")
    loso.axvline(0.5, ls="--", c="grey", lw=1)
    loso.set(xlim=(0, 1), title="Leave-one-source-out ROC-AUC", xlabel="AUC of the unseen source")

    edges = np.linspace(0, 1, len(next(iter(result["components"].values()))["histogram"]) + 1)
    for component, stats in result["components"].items():
        counts = np.asarray(stats["histogram"], dtype=float)
        share = counts / max(counts.sum(), 1)
        hist.step(edges[:-1], share, where="post", lw=1.6,
                  label=f"{component} (n={stats['documents']}, keep {stats['keep_rate']:.0%})")
    rule = result["keep_rule"]
    if rule["kind"] == "pareto":
        s = np.linspace(0, 1, 101)
        curve = hist.twinx()
        curve.plot(s, (2 - s) ** -rule["alpha"], c="black", ls=":", lw=1.5)
        curve.set(ylim=(0, 1.05), ylabel=f"P(keep) = (2 - s)^-{rule['alpha']:g}")
    hist.set(title="Quality score by component", xlabel="score", ylabel="share of documents")
    hist.legend(fontsize=7, loc="upper center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
