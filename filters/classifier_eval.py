"""Honest metrics for the quality classifier: held-out ranking quality, and how much of it is source recognition."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from filters.classifier_data import Example, SplitSets


def binary_metrics(labels: Sequence[int], scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision) and F1 at 0.5."""
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    labels = np.asarray(labels)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "f1": float(f1_score(labels, scores >= 0.5)),
        "n": len(labels),
        "positives": int(labels.sum()),
    }


def leave_one_source_out(
    sets: SplitSets, train_fn: Callable[[list[Example]], Callable[[list[str]], np.ndarray]]
) -> dict[str, float]:
    """For each source X: train without X, score all of X, and compute ROC-AUC of X against the held-out documents
    of the other class. A high AUC says the model recognises quality it never saw from that source; a low one
    says it had learned the source."""
    out = {}
    every = sets.train + sets.heldout
    for source in sets.sources():
        target = [e for e in every if e.source == source]
        label = target[0].label
        others = [e for e in sets.heldout if e.label != label and e.source != source]
        train = [e for e in sets.train if e.source != source]
        if not others or {e.label for e in train} != {0, 1}:
            continue
        score = train_fn(train)
        scores = np.concatenate([score([e.text for e in target]), score([e.text for e in others])])
        labels = [label] * len(target) + [1 - label] * len(others)
        from sklearn.metrics import roc_auc_score

        out[source] = float(roc_auc_score(labels, scores))
    return out
