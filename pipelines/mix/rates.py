"""What goes into the mixture, as pure functions: per-component rates from the budget and the
weights, the keep threshold and copies per document (the planning table of `glamkit report --plan` is report/plan.py).

GLaM's weights are sampling rates: component i gets `weight_i x budget` training tokens whatever its size. Its rate is
`target / tokens_available`; a document is seen `floor(rate)` times, plus once more iff
`uniform(doc_id, seed, "mix") < threshold`. The plain rule takes `threshold = frac(rate)` (a Bernoulli draw per
document); with `exact_tokens` the threshold is the point in the same uniform order where the component's extra tokens
come closest to `frac(rate) x tokens_available`, so each component hits its target within half a document even when
it holds a few large documents (a Gutenberg play is 1% of the demo's budget). Either way a document's fate depends on
its own hash alone, and its copies are exactly floor or ceil of the rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from data_specs.hashing import uniform
from data_specs.records import component_order

MIX_PURPOSE = "mix"
SPLIT_PURPOSE = "split"
TRAIN, VALIDATION = "train", "validation"


# ------------------------------------------------------------------------------------------------ rates
def split_of(doc_id: str, seed: int, validation_fraction: float) -> str:
    """Validation is split off by document, before sampling: a document is never in both splits."""
    return VALIDATION if uniform(doc_id, seed, SPLIT_PURPOSE) < validation_fraction else TRAIN


@dataclass(frozen=True)
class ComponentRate:
    """How one component is sampled: copies(doc) = whole + (uniform(doc_id, seed, 'mix') < threshold)."""

    weight: float
    tokens_available: int
    documents_available: int
    target_tokens: float  # weight x budget
    rate: float  # target / available: the expected epochs
    whole: int  # floor(rate): every document at least this many times
    threshold: float  # the keep threshold for one more copy (frac(rate), or calibrated)
    planned_tokens: int  # tokens the rule yields (exact: computed over the documents)

    @property
    def epochs(self) -> float:
        return self.planned_tokens / self.tokens_available if self.tokens_available else 0.0


def copies(u: float, whole: int, threshold: float) -> int:
    return whole + (1 if u < threshold else 0)


def calibrate_threshold(docs: Sequence[tuple[float, int]], extra_target: float) -> float:
    """The threshold t such that the documents with u < t (u = their 'mix' draw) hold the number of tokens closest to
    `extra_target` (ties: fewer documents). `docs` is (u, tokens) per document, any order."""
    ordered = sorted(docs)
    best_k, best_err, cum = 0, abs(extra_target), 0
    for k, (_, tokens) in enumerate(ordered, 1):
        cum += tokens
        err = abs(cum - extra_target)
        if err < best_err:
            best_k, best_err = k, err
        elif cum > extra_target:
            break
    return ordered[best_k][0] if best_k < len(ordered) else 1.0


def component_rate(docs: Sequence[tuple[str, int]], weight: float, budget: int, seed: int,
                   exact: bool = True) -> ComponentRate:
    """The rate for one component from its training documents, (doc_id, tokens) each."""
    available = sum(n for _, n in docs)
    target = weight * budget
    if available == 0:
        return ComponentRate(weight, 0, 0, target, 0.0, 0, 0.0, 0)
    rate = target / available
    whole = math.floor(rate)
    draws = [(uniform(doc_id, seed, MIX_PURPOSE), n) for doc_id, n in docs]
    frac = rate - whole
    threshold = calibrate_threshold(draws, frac * available) if exact else frac
    planned = sum(copies(u, whole, threshold) * n for u, n in draws)
    return ComponentRate(weight, available, len(docs), target, rate, whole, threshold, planned)


def rate_warnings(rates: Mapping[str, ComponentRate], tolerance: float = 0.1) -> list[str]:
    """Components whose planned tokens miss their target by more than `tolerance` (relative): a component of a few
    documents each larger than its target, or one with no documents at all."""
    out = []
    for c, r in rates.items():
        if r.target_tokens and abs(r.planned_tokens - r.target_tokens) > tolerance * r.target_tokens:
            why = ("no curated documents" if not r.tokens_available else
                   f"{r.documents_available} documents, {r.tokens_available:,} tokens: sampling whole documents "
                   "cannot come closer")
            out.append(f"{c}: {r.planned_tokens:,} tokens planned for a target of {r.target_tokens:,.0f} ({why})")
    return out


def mixture_rates(docs_by_component: Mapping[str, Sequence[tuple[str, int]]], weights: Mapping[str, float],
                  budget: int, seed: int, exact: bool = True) -> dict[str, ComponentRate]:
    return {c: component_rate(docs_by_component.get(c, ()), w, budget, seed, exact)
            for c, w in sorted(weights.items(), key=lambda kv: component_order(kv[0]))}
