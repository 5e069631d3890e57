"""Calibrating the Pareto keep rule's alpha: a known alpha is recovered from scores drawn with it."""

import numpy as np
import pytest

from data_specs.specs import KeepRuleSpec
from filters.calibrate import fit_alpha_to_keep_rate, fit_alpha_to_reference, kept_ks
from filters.keep import apply_keep_rule, keep_probability


def _kept_by(alpha: float, scores: np.ndarray, seed: int) -> np.ndarray:
    """The scores of the pages GPT-3's rule keeps at `alpha` (each kept with probability (2 - s)^-alpha)."""
    rng = np.random.default_rng(seed)
    return scores[rng.random(len(scores)) < keep_probability(scores, alpha)]


@pytest.mark.parametrize("alpha", [1.5, 3.0, 9.0])
def test_the_alpha_that_kept_a_sample_is_recovered_from_its_scores(alpha: float) -> None:
    scores = np.random.default_rng(7).beta(2.0, 3.0, 40_000)  # candidates: mostly low scores, as web pages
    kept = _kept_by(alpha, scores, seed=11)
    cal = fit_alpha_to_reference(scores, kept)
    assert cal.alpha == pytest.approx(alpha, rel=0.1)
    assert cal.method == "reference_ks" and cal.ks < 0.03 and cal.reference == len(kept)
    # the fit is a minimum: alphas around it match the kept sample worse
    assert kept_ks(scores, cal.alpha, kept) <= min(kept_ks(scores, cal.alpha * f, kept) for f in (0.7, 1.4))


@pytest.mark.parametrize("alpha", [0.5, 3.0, 20.0])
def test_a_target_keep_rate_gives_back_the_alpha_that_keeps_it(alpha: float) -> None:
    scores = np.random.default_rng(3).uniform(0, 1, 5000)
    target = float(keep_probability(scores, alpha).mean())
    cal = fit_alpha_to_keep_rate(scores, target)
    assert cal.alpha == pytest.approx(alpha, rel=1e-6)
    assert cal.expected_keep_rate == pytest.approx(target, rel=1e-9)


def test_the_fit_is_deterministic_and_order_free() -> None:
    scores = np.random.default_rng(5).beta(2.0, 5.0, 3000)
    ref = _kept_by(4.0, scores, seed=1)
    a = fit_alpha_to_reference(scores, ref)
    b = fit_alpha_to_reference(scores[::-1].copy(), ref[::-1].copy())
    assert a == b


def test_the_curve_and_record_say_what_was_fitted() -> None:
    cal = fit_alpha_to_keep_rate(np.linspace(0, 1, 101), 0.25)
    curve = dict(cal.curve())
    assert curve[1.0] == 1.0 and curve[0.0] == pytest.approx(2 ** -cal.alpha)
    record = cal.to_dict()
    assert record["method"] == "keep_rate" and record["target_keep"] == 0.25 and record["ks"] is None


def test_bad_scores_and_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        fit_alpha_to_reference(np.array([0.2, 1.5]), np.array([0.9]))
    with pytest.raises(ValueError, match="no reference scores"):
        fit_alpha_to_reference(np.array([0.2]), np.array([]))
    with pytest.raises(ValueError, match="target keep fraction"):
        fit_alpha_to_keep_rate(np.array([0.2]), 1.0)


def test_an_auto_rule_is_never_applied_unfitted() -> None:
    rule = KeepRuleSpec(alpha="auto")
    assert rule.auto and rule.describe() == "pareto alpha auto (match held-out positives)"
    assert KeepRuleSpec(alpha="auto", target_keep=0.2).describe() == "pareto alpha auto (keep 20%)"
    with pytest.raises(ValueError, match="fitted before"):
        apply_keep_rule(rule, ["a"], np.array([0.5]))
    with pytest.raises(ValueError, match="positive number or 'auto'"):
        KeepRuleSpec(alpha=0.0)
