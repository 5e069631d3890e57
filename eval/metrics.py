"""Metrics with lm-evaluation-harness semantics, and their standard errors."""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 after normalisation."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    stderr = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return float(values.mean()), stderr


def rolling_metrics(logliks: Sequence[float], tokens: Sequence[int], words: Sequence[int],
                    nbytes: Sequence[int]) -> dict[str, float]:
    """Corpus-level perplexities from per-document sums: token perplexity, word perplexity, bits per byte."""
    ll = float(np.sum(logliks))
    return {
        "perplexity": math.exp(-ll / max(int(np.sum(tokens)), 1)),
        "word_perplexity": math.exp(-ll / max(int(np.sum(words)), 1)),
        "bits_per_byte": -ll / (max(int(np.sum(nbytes)), 1) * math.log(2)),
    }


def bootstrap_stderr(fn, columns: Sequence[Sequence[float]], iters: int = 200, seed: int = 0) -> float:
    """Bootstrap standard error of a corpus-level statistic `fn(*resampled_columns)` (documents resampled)."""
    arrays = [np.asarray(c) for c in columns]
    n = len(arrays[0])
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)  # a resampling stream, not a per-document decision
    stats = [fn(*[a[idx] for a in arrays]) for idx in (rng.integers(0, n, n) for _ in range(iters))]
    return float(np.std(stats, ddof=1))
