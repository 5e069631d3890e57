"""Train, evaluate and apply the quality classifier on documents (plain Python: no Beam, no plots, no run folders;
the recipe's classifier stage is eval/classifier.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from data_specs.hashing import hash_value
from data_specs.loader import to_plain
from data_specs.progress import track
from data_specs.records import Document, read_documents, write_jsonl_gz, write_parquet
from data_specs.specs import ClassifierSpec, KeepRuleSpec
from filters.classifier_data import Example, SplitSets, build_sets
from filters.classifier_eval import binary_metrics, leave_one_source_out, source_out, worst
from filters.keep import apply_keep_rule, keep_probability
from filters.quality import SCORE_BINS, QualityClassifier, load_classifier, new_classifier, save_reference_scores


def _fit(spec: ClassifierSpec, examples: list[Example]) -> QualityClassifier:
    clf = new_classifier(spec.backend, spec.fasttext, spec.sklearn, spec.max_chars, spec.seed)
    return clf.fit([e.text for e in examples], [e.label for e in examples])


def train(spec: ClassifierSpec, docs_by_source: Mapping[str, list[Document]], out_dir: Path) -> dict[str, Any]:
    """Fit on the training groups, measure on the held-out groups (hosts, for web pages: the model curation uses
    never saw them), save model + sidecar + the held-out positives' scores (the reference `alpha: auto` matches).
    Returns the held-out metrics."""
    sets = build_sets(spec, docs_by_source)
    clf = _fit(spec, sets.train)
    scores = clf.score([e.text for e in sets.heldout])
    heldout = binary_metrics([e.label for e in sets.heldout], scores)
    clf.save(out_dir, metadata={
        "spec": spec.name,
        "spec_hash": hash_value(to_plain(spec)),
        "training": {
            "split": spec.group_key,
            "train_documents": len(sets.train),
            "heldout_documents": len(sets.heldout),
            "heldout_groups": len({e.group for e in sets.heldout}),
            "heldout": heldout,
        },
    })
    positives = [float(s) for e, s in zip(sets.heldout, scores, strict=True) if e.label == 1]
    save_reference_scores(out_dir, positives, f"held-out positives of classifier {spec.name} (split by "
                                              f"{spec.group_key}): {', '.join(s.source for s in spec.positives)}")
    return heldout


def evaluate(
    spec: ClassifierSpec, model_dir: Path, docs_by_source: Mapping[str, list[Document]],
    keep: KeepRuleSpec | None = None, keep_from: str | None = None,
) -> dict[str, Any]:
    """What eval.json holds (eval/classifier.py writes it and eval.png): held-out-by-group metrics next to the
    leave-one-source-out AUCs (the worst named), and the score distribution of every component in `docs_by_source`.
    With `keep` (the mixture's rule, named by `keep_from`), each component's keep rate under it."""
    clf = load_classifier(model_dir)
    sets = build_sets(spec, docs_by_source)
    heldout_scores = clf.score([e.text for e in sets.heldout])
    result: dict[str, Any] = {"heldout_split": spec.group_key,
                              **binary_metrics([e.label for e in sets.heldout], heldout_scores),
                              "heldout_groups": len({e.group for e in sets.heldout})}
    loso = loso_parallel(spec, sets)
    result["leave_one_source_out"] = loso
    result["leave_one_source_out_roc_auc"] = {k: v["roc_auc"] for k, v in loso.items()}
    result["worst_leave_one_source_out"] = worst(loso)
    result["worst_web_leave_one_source_out"] = worst(loso, "web")
    result["components"] = score_components(clf, docs_by_source, keep)
    result["keep_rule"] = None if keep is None else {"rule": keep.describe(), "from": keep_from, **to_plain(keep)}
    result["roc_curve"] = _roc_points(sets, heldout_scores)
    return result


LOSO_WORKERS = 4  # at most this many processes fit the leave-one-source-out models (one per core)
_LOSO: dict[str, Any] = {}  # a LOSO worker's spec and sets, set once per process by _loso_init


def loso_parallel(spec: ClassifierSpec, sets: SplitSets, workers: int | None = None) -> dict[str, dict[str, Any]]:
    """leave_one_source_out, one model per source, fitted in parallel processes (each fit is single-threaded and
    seeded, so the AUCs do not depend on the worker count). Spawned workers get the sets once, not per source."""
    sources = sets.sources()
    workers = min(workers or os.cpu_count() or 1, LOSO_WORKERS, len(sources))
    if workers <= 1:
        return leave_one_source_out(sets, lambda ex: _fit(spec, ex).score)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_loso_init,
                             initargs=(spec, sets)) as pool:
        futures = {pool.submit(_loso_one, s): s for s in sources}
        done = {futures[f]: f.result() for f in track(as_completed(futures), "classifier: leave-one-source-out",
                                                      len(sources), "fits")}
        rows = [done[s] for s in sources]
    return {s: r for s, r in zip(sources, rows, strict=True) if r is not None}


def _loso_init(spec: ClassifierSpec, sets: SplitSets) -> None:
    _LOSO.update(spec=spec, sets=sets)


def _loso_one(source: str) -> dict[str, Any] | None:
    spec = _LOSO["spec"]
    return source_out(_LOSO["sets"], source, lambda ex: _fit(spec, ex).score)


def score_components(
    clf: QualityClassifier, docs_by_source: Mapping[str, list[Document]], keep: KeepRuleSpec | None = None
) -> dict[str, dict[str, Any]]:
    """Per component: documents, mean score, score quantiles (every 5%) and histogram; with a keep rule, the
    fraction it keeps (and for Pareto the expected fraction, mean (2 - s)^-alpha)."""
    by_component: dict[str, list[Document]] = {}
    for docs in docs_by_source.values():
        for doc in docs:
            by_component.setdefault(doc.component, []).append(doc)
    out = {}
    for component, docs in sorted(by_component.items()):
        scores = clf.score([d.text for d in docs])
        hist, _ = np.histogram(scores, bins=SCORE_BINS, range=(0.0, 1.0))
        row: dict[str, Any] = {
            "documents": len(docs),
            "mean_score": float(scores.mean()),
            "quantiles": [round(float(q), 6) for q in np.quantile(scores, np.linspace(0, 1, 21))],
            "histogram": hist.tolist(),
        }
        if keep is not None:
            row["keep_rate"] = float(apply_keep_rule(keep, [d.id for d in docs], scores).mean())
            row["expected_keep_rate"] = (float(keep_probability(scores, keep.alpha).mean())
                                         if keep.kind == "pareto" else None)
        out[component] = row
    return out


def _roc_points(sets: SplitSets, scores: np.ndarray) -> dict[str, list[float]]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve([e.label for e in sets.heldout], scores)
    return {"fpr": [round(float(x), 6) for x in fpr], "tpr": [round(float(x), 6) for x in tpr]}


def score_file(model_dir: Path, in_path: Path, out_path: Path, batch: int = 512) -> int:
    """Score a JSONL/Parquet file of document records; the score goes into meta['quality_score']."""
    clf = load_classifier(model_dir)

    def scored() -> Iterable[Document]:
        chunk: list[Document] = []
        for doc in read_documents(in_path):
            chunk.append(doc)
            if len(chunk) == batch:
                yield from _with_scores(clf, chunk)
                chunk = []
        yield from _with_scores(clf, chunk)

    writer = write_parquet if str(out_path).endswith(".parquet") else write_jsonl_gz
    return writer(out_path, scored())


def _with_scores(clf: QualityClassifier, docs: list[Document]) -> Iterable[Document]:
    if not docs:
        return
    for doc, score in zip(docs, clf.score([d.text for d in docs]), strict=True):
        meta = {**doc.meta, "quality_score": f"{float(score):.6f}"}
        yield Document(doc.id, doc.component, doc.source, doc.text, doc.url, meta)
