"""Fit the Pareto keep rule's alpha to the data, as GPT-3 chose theirs: the web pages kept should look, to the
classifier, like the curated text it was trained to recognise. Or fit it to a target keep fraction.

Under the rule a page of score s is kept with probability w(s) = (2 - s)^-alpha, so the kept pages' scores follow
the candidates' distribution reweighted by w. `fit_alpha_to_reference` picks the alpha whose reweighted distribution
is closest, in Kolmogorov-Smirnov distance, to the reference scores (held-out positives: curated text the model
never saw); `fit_alpha_to_keep_rate` picks the alpha whose expected keep rate is the target. Both are deterministic
(a log-spaced grid, then golden-section refinement) and depend only on the scores, not on any Pareto draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from filters.keep import keep_probability

ALPHA_RANGE = (0.05, 200.0)
GRID = 241  # log-spaced alphas scanned before refining
CURVE_SCORES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # where the printed keep curve is evaluated


@dataclass(frozen=True)
class Calibration:
    alpha: float
    method: str  # "reference_ks" or "keep_rate"
    ks: float | None  # KS distance between the expected kept scores and the reference (reference_ks)
    expected_keep_rate: float  # mean P(keep) over the candidates at this alpha
    candidates: int
    reference: int  # reference scores used (0 for keep_rate)
    target_keep: float | None = None

    def curve(self) -> list[tuple[float, float]]:
        """(score, P(keep)) at a few scores: the keep curve at the fitted alpha."""
        return [(s, float((2.0 - s) ** -self.alpha)) for s in CURVE_SCORES]

    def to_dict(self) -> dict:
        return {"alpha": round(self.alpha, 6), "method": self.method,
                "ks": None if self.ks is None else round(self.ks, 6),
                "expected_keep_rate": round(self.expected_keep_rate, 6), "candidates": self.candidates,
                "reference": self.reference, "target_keep": self.target_keep,
                "curve": [[s, round(p, 6)] for s, p in self.curve()]}


class _KeptKS:
    """KS distance between the candidates' scores reweighted by P(keep) = (2 - s)^-alpha and the reference's, as a
    function of alpha. Where the two CDFs are compared does not depend on alpha, so it is worked out once."""

    def __init__(self, scores: np.ndarray, reference: np.ndarray) -> None:
        self.s = np.sort(np.asarray(scores, dtype=np.float64))
        ref = np.sort(np.asarray(reference, dtype=np.float64))
        points = np.concatenate([self.s, ref])
        self.at = np.searchsorted(self.s, points, side="right")  # candidates at or below each point
        self.g = np.searchsorted(ref, points, side="right") / len(ref)

    def __call__(self, alpha: float) -> float:
        w = keep_probability(self.s, alpha)
        kept_cdf = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
        return float(np.max(np.abs(kept_cdf[self.at] - self.g)))


def kept_ks(scores: np.ndarray, alpha: float, reference: np.ndarray) -> float:
    """KS distance between the candidates' scores reweighted by P(keep) = (2 - s)^-alpha and the reference's."""
    return _KeptKS(scores, reference)(alpha)


def _minimise(fn, lo: float, hi: float) -> float:
    """argmin of fn over log-alpha in [lo, hi]: a grid, then golden-section search around the best grid point."""
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), GRID))
    values = [fn(a) for a in grid]
    best = int(np.argmin(values))  # first minimum: ties go to the smaller alpha (keeps more)
    a, b = math.log(grid[max(best - 1, 0)]), math.log(grid[min(best + 1, GRID - 1)])
    inv_phi = (math.sqrt(5) - 1) / 2
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = fn(math.exp(c)), fn(math.exp(d))
    for _ in range(40):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = fn(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = fn(math.exp(d))
    x = math.exp((a + b) / 2)
    return x if fn(x) <= values[best] else float(grid[best])


def fit_alpha_to_reference(scores: np.ndarray, reference: np.ndarray,
                           bounds: tuple[float, float] = ALPHA_RANGE) -> Calibration:
    """The alpha whose kept pages' score distribution best matches the reference (minimal KS distance)."""
    scores, reference = _check(scores, "candidate"), _check(reference, "reference")
    ks = _KeptKS(scores, reference)
    alpha = _minimise(ks, *bounds)
    return Calibration(alpha, "reference_ks", ks(alpha),
                       float(keep_probability(scores, alpha).mean()), len(scores), len(reference))


def fit_alpha_to_keep_rate(scores: np.ndarray, target: float,
                           bounds: tuple[float, float] = ALPHA_RANGE) -> Calibration:
    """The alpha whose expected keep rate, mean((2 - s)^-alpha), is `target` (it falls as alpha grows)."""
    scores = _check(scores, "candidate")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target keep fraction must be in (0, 1), got {target}")
    rate = lambda a: float(keep_probability(scores, a).mean())  # noqa: E731
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    if rate(math.exp(lo)) <= target:
        alpha = math.exp(lo)
    elif rate(math.exp(hi)) >= target:
        alpha = math.exp(hi)
    else:
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if rate(math.exp(mid)) > target else (lo, mid)
        alpha = math.exp((lo + hi) / 2)
    return Calibration(alpha, "keep_rate", None, rate(alpha), len(scores), 0, target)


def _check(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"no {what} scores to calibrate on")
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"{what} scores must be finite and in [0, 1]")
    return arr
