"""The classifier evaluation figure: held-out-by-group ROC, leave-one-source-out AUCs (the held-out AUC drawn on
the same axis, so neither is read alone), per-component score histograms (with the mixture's keep curve if given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from report.png import pyplot, save_png


def plot_eval(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, (roc, loso, hist) = plt.subplots(1, 3, figsize=(18, 5.0), gridspec_kw={"width_ratios": [1, 1.2, 1]})
    roc.plot(result["roc_curve"]["fpr"], result["roc_curve"]["tpr"], lw=2)
    roc.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    split = result.get("heldout_split", "group")
    roc.set(title=f"Held out by {split}: ROC-AUC {result['roc_auc']:.3f}", xlabel="false positive rate",
            ylabel="true positive rate")

    details = result.get("leave_one_source_out", {})
    names = sorted(result["leave_one_source_out_roc_auc"], key=lambda n: result["leave_one_source_out_roc_auc"][n])
    values = [result["leave_one_source_out_roc_auc"][n] for n in names]
    colours = ["tab:red" if details.get(n, {}).get("label") == 0 else "tab:green" for n in names]
    loso.barh(names, values, color=colours)
    loso.axvline(0.5, ls="--", c="grey", lw=1)
    loso.axvline(result["roc_auc"], ls="-", c="tab:blue", lw=1.5, label=f"held out by {split} {result['roc_auc']:.3f}")
    loso.set(xlim=(0, 1), title="Leave-one-source-out ROC-AUC (red: web, green: curated)",
             xlabel="AUC of the unseen source")
    loso.tick_params(axis="y", labelsize=7)
    loso.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)

    edges = np.linspace(0, 1, len(next(iter(result["components"].values()))["histogram"]) + 1)
    for component, stats in result["components"].items():
        counts = np.asarray(stats["histogram"], dtype=float)
        share = counts / max(counts.sum(), 1)
        keep = f", keep {stats['keep_rate']:.0%}" if "keep_rate" in stats else ""
        hist.step(edges[:-1], share, where="post", lw=1.6, label=f"{component} (n={stats['documents']}{keep})")
    rule = result.get("keep_rule")
    if rule and rule["kind"] == "pareto":
        s = np.linspace(0, 1, 101)
        curve = hist.twinx()
        curve.plot(s, (2 - s) ** -rule["alpha"], c="black", ls=":", lw=1.5)
        curve.set(ylim=(0, 1.05), ylabel=f"P(keep) = (2 - s)^-{rule['alpha']:g} ({rule['from']})")
    hist.set(title="Quality score by component", xlabel="score", ylabel="share of documents")
    hist.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.18 if rule else 1.02, 1.0), frameon=False)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
