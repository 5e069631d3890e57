"""Keep rules: the Pareto rule keeps with probability (2 - s)^-alpha, and a decision depends on the document alone."""

import numpy as np
import pytest

from data_specs.specs import KeepRuleSpec
from filters.keep import TopFractionCutoff, apply_keep_rule, keep_probability, pareto_keep

IDS = [f"web/{i}" for i in range(200_000)]


@pytest.mark.parametrize("score", [0.0, 0.5, 0.9, 1.0])
def test_pareto_keep_rate_matches_theory(score: float) -> None:
    alpha = 9.0
    kept = pareto_keep(IDS, np.full(len(IDS), score), alpha=alpha, seed=7)
    p = (2.0 - score) ** -alpha
    stderr = np.sqrt(p * (1 - p) / len(IDS))
    assert abs(kept.mean() - p) <= 3 * stderr + 1e-12
    assert keep_probability(np.array([score]), alpha)[0] == pytest.approx(p)


def test_paper_keep_probabilities() -> None:
    # GLAM.md: s=1.0 -> 1.0, 0.9 -> 0.42, 0.5 -> 0.026, 0 -> 0.002 (alpha 9)
    probs = keep_probability(np.array([1.0, 0.9, 0.5, 0.0]), 9.0)
    assert [f"{p:.2g}" for p in probs] == ["1", "0.42", "0.026", "0.002"]


def test_pareto_decisions_ignore_order_and_batching() -> None:
    ids = IDS[:20_000]
    scores = np.random.default_rng(0).random(len(ids))
    whole = pareto_keep(ids, scores, 9.0, seed=3)
    perm = np.random.default_rng(1).permutation(len(ids))
    shuffled = pareto_keep([ids[i] for i in perm], scores[perm], 9.0, seed=3)
    np.testing.assert_array_equal(whole[perm], shuffled)
    batches = np.concatenate([pareto_keep(ids[i : i + 777], scores[i : i + 777], 9.0, seed=3)
                              for i in range(0, len(ids), 777)])
    np.testing.assert_array_equal(whole, batches)
    assert not np.array_equal(whole, pareto_keep(ids, scores, 9.0, seed=4))  # the seed matters


def test_threshold_and_top_fraction_rules() -> None:
    ids = [f"d{i}" for i in range(1000)]
    scores = np.round(np.random.default_rng(2).random(1000), 1)  # many ties
    kept = apply_keep_rule(KeepRuleSpec(kind="threshold", threshold=0.7), ids, scores)
    np.testing.assert_array_equal(kept, scores >= 0.7)
    rule = KeepRuleSpec(kind="top_fraction", fraction=0.25)
    cutoff = TopFractionCutoff.fit(ids, scores, 0.25, rule.seed)
    kept = apply_keep_rule(rule, ids, scores, cutoff)
    assert kept.sum() == 250  # exactly the fraction, ties broken by the keyed hash
    assert scores[kept].min() >= scores[~kept].max()
    half = apply_keep_rule(rule, ids[:500], scores[:500], cutoff)  # a batch alone decides the same way
    np.testing.assert_array_equal(half, kept[:500])
