"""Keep rules: how a quality score becomes a keep/drop decision.

`pareto` is GPT-3's rule, which GLaM follows: keep iff pareto_draw(alpha) > 1 - score, so P(keep) = (2 - score)^-alpha
and low-scoring pages still get in now and then (a guard against the classifier's own biases). The draw comes from
`uniform(doc_id, seed, "pareto")` through the Lomax (numpy's `pareto`) inverse CDF, so a document's decision
depends on nothing but its id, score and the rule: not on batch, worker or order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from data_specs.hashing import uniform_array
from data_specs.specs import KeepRuleSpec


def pareto_draws(doc_ids: Sequence[str], alpha: float, seed: int) -> np.ndarray:
    """numpy.random.pareto(alpha) draws (Lomax, support [0, inf)), one per document, keyed by its id."""
    u = uniform_array(doc_ids, seed, "pareto")
    return np.power(1.0 - u, -1.0 / alpha) - 1.0


def keep_probability(scores: np.ndarray, alpha: float) -> np.ndarray:
    """P(keep) under the Pareto rule: (2 - score)^-alpha."""
    return np.power(2.0 - np.asarray(scores, dtype=np.float64), -alpha)


def pareto_keep(doc_ids: Sequence[str], scores: np.ndarray, alpha: float = 9.0, seed: int = 0) -> np.ndarray:
    return pareto_draws(doc_ids, alpha, seed) > 1.0 - np.asarray(scores, dtype=np.float64)


def threshold_keep(scores: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(scores) >= threshold


@dataclass(frozen=True)
class TopFractionCutoff:
    """The cutoff that keeps the best `fraction` of a component: a score, with ties broken by a keyed hash of the
    id. Fitting needs every score of the component (a global statistic); applying it is per document."""

    score: float
    tie_break: float

    @classmethod
    def fit(cls, doc_ids: Sequence[str], scores: np.ndarray, fraction: float, seed: int = 0) -> TopFractionCutoff:
        n_keep = round(fraction * len(scores))
        if n_keep <= 0:
            return cls(float("inf"), 1.0)
        ties = uniform_array(doc_ids, seed, "top-fraction")
        order = np.lexsort((ties, -np.asarray(scores, dtype=np.float64)))  # best first; ties by hash
        last = order[min(n_keep, len(scores)) - 1]
        return cls(float(scores[last]), float(ties[last]))

    def keep(self, doc_ids: Sequence[str], scores: np.ndarray, seed: int = 0) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        ties = uniform_array(doc_ids, seed, "top-fraction")
        return (scores > self.score) | ((scores == self.score) & (ties <= self.tie_break))


def apply_keep_rule(
    rule: KeepRuleSpec, doc_ids: Sequence[str], scores: np.ndarray, cutoff: TopFractionCutoff | None = None
) -> np.ndarray:
    """Keep decisions for a batch under `rule`. top_fraction needs the cutoff fitted on the whole component, alpha
    'auto' an alpha fitted on it (pipelines.curate.core.fit_keep) first."""
    if rule.kind == "pareto":
        if rule.auto:
            raise ValueError("alpha 'auto' must be fitted before the rule is applied (pipelines.curate.core.fit_keep)")
        return pareto_keep(doc_ids, scores, rule.alpha, rule.seed)
    if rule.kind == "threshold":
        return threshold_keep(scores, rule.threshold)
    if cutoff is None:
        cutoff = TopFractionCutoff.fit(doc_ids, scores, rule.fraction, rule.seed)
    return cutoff.keep(doc_ids, scores, rule.seed)
