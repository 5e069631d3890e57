"""The keep-rule calibration figure (`glamkit classifier calibrate`): what the fit matched, to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from filters.calibrate import Calibration
from filters.keep import keep_probability
from report.png import pyplot, save_png


def plot_calibration(cal: Calibration, scores: np.ndarray, reference: np.ndarray | None, path: Path) -> None:
    """A histogram of the candidates' `scores` (glamkit.calibration.Candidates.scores), of the pages expected kept
    at the fitted alpha and of the reference, with the keep curve."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    bins = np.linspace(0, 1, 41)
    w = keep_probability(scores, cal.alpha)
    ax.hist(scores, bins=bins, density=True, histtype="step", lw=1.6, color="#888",
            label=f"candidates (n={cal.candidates:,})")
    ax.hist(scores, bins=bins, weights=w, density=True, histtype="stepfilled", alpha=0.45, color="#2ca02c",
            label=f"expected kept at alpha {cal.alpha:.2f} ({cal.expected_keep_rate:.0%})")
    if reference is not None:
        ax.hist(reference, bins=bins, density=True, histtype="step", lw=1.6, color="#1f3fbf",
                label=f"held-out positives (n={len(reference):,})")
    ax.set(xlabel="quality score", ylabel="density", xlim=(0, 1), title="Keep-rule calibration")
    curve = ax.twinx()
    s = np.linspace(0, 1, 101)
    curve.plot(s, (2 - s) ** -cal.alpha, c="black", ls=":", lw=1.5)
    curve.set(ylim=(0, 1.05), ylabel=f"P(keep) = (2 - s)^-{cal.alpha:.2f}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.12, 1.0), frameon=False)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
