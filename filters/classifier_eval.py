"""Honest metrics for the quality classifier: held-out ranking quality, and how much of it is source recognition."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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
) -> dict[str, dict[str, Any]]:
    """For each source X: train without X (and without every group X has documents in: a host two collections
    share), score all of X, and compute ROC-AUC of X against the held-out documents of the other class. A high AUC
    says the model recognises quality it never saw from that source; a low one says it had learned the source."""
    out = {}
    for source in sets.sources():
        row = source_out(sets, source, train_fn)
        if row is not None:
            out[source] = row
    return out


def source_out(sets: SplitSets, source: str, train_fn: Callable[[list[Example]], Callable[[list[str]], np.ndarray]]
               ) -> dict[str, Any] | None:
    """One source's leave-one-source-out AUC (see leave_one_source_out), or None when it cannot be measured (no
    held-out document of the other class, or a training set without both classes)."""
    from sklearn.metrics import roc_auc_score

    every = sets.train + sets.heldout
    target = [e for e in every if e.source == source]
    label = target[0].label
    groups = {e.group for e in target}
    others = [e for e in sets.heldout if e.label != label and e.source != source]
    train = [e for e in sets.train if e.source != source and e.group not in groups]
    if not others or {e.label for e in train} != {0, 1}:
        return None
    score = train_fn(train)
    scores = np.concatenate([score([e.text for e in target]), score([e.text for e in others])])
    labels = [label] * len(target) + [1 - label] * len(others)
    return {"roc_auc": float(roc_auc_score(labels, scores)), "label": label, "component": target[0].component,
            "documents": len(target), "compared_with": len(others)}


def worst(loso: dict[str, dict[str, Any]], component: str | None = None) -> dict[str, Any] | None:
    """The source with the lowest leave-one-source-out AUC (of one component, if given)."""
    rows = [(v["roc_auc"], k, v) for k, v in loso.items() if component is None or v["component"] == component]
    if not rows:
        return None
    auc, source, v = min(rows, key=lambda r: (r[0], r[1]))
    return {"source": source, "roc_auc": auc, "component": v["component"]}


def auc_line(result: dict[str, Any]) -> str:
    """The held-out AUC with its leave-one-source-out partner: the two are only ever shown together (a held-out
    figure from the same sources alone overstates what the model learned)."""
    split = result.get("heldout_split", "group")
    out = f"held-out-by-{split} ROC-AUC {result['roc_auc']:.3f}"
    worst_all = result.get("worst_leave_one_source_out")
    worst_web = result.get("worst_web_leave_one_source_out")
    if worst_web:
        out += f", worst web-source leave-one-source-out ROC-AUC {worst_web['roc_auc']:.3f} ({worst_web['source']})"
    if worst_all and worst_all != worst_web:
        out += f", worst of all sources {worst_all['roc_auc']:.3f} ({worst_all['source']})"
    if not worst_all:
        out += ", leave-one-source-out ROC-AUC not measured"
    return out


def format_eval(result: dict) -> str:
    """Held-out by group and the worst leave-one-source-out AUC on one line (never one without the other), every
    source's LOSO AUC, and per component the mean score (and keep rate under the named rule, if one was given)."""
    lines = [auc_line(result) + f"; PR-AUC {result['pr_auc']:.3f}, F1 {result['f1']:.3f} on "
             f"{result['n']:,} held-out documents"]
    lines.append("leave-one-source-out ROC-AUC: " + ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(result["leave_one_source_out_roc_auc"].items())))
    rule = result.get("keep_rule")
    keep_col = rule is not None
    lines.append(f"{'component':<14}{'docs':>7}{'mean score':>12}" + (f"{'keep rate':>11}" if keep_col else ""))
    for name, c in result["components"].items():
        lines.append(f"{name:<14}{c['documents']:>7}{c['mean_score']:>12.3f}"
                     + (f"{c['keep_rate']:>11.3f}" if keep_col else ""))
    if keep_col:
        lines.append(f"keep rates under {rule['rule']} (from {rule['from']}): the rule curation applies")
    else:
        lines.append("keep rates: curation applies the mixture's keep rule (RUN/report.html, curated/stats.json)")
    return "\n".join(lines)
