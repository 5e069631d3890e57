"""Quality-classifier throughput on the real demo documents: each backend's `score` vs the bare library call.

The bare call gets the same already-normalised strings in the same batch size (fastText's `predict(list)`;
scikit-learn's `predict_proba` on the vectoriser's output), so the ratio is glamkit's overhead, normalisation
included. One process, one thread: the figures are per core.

    .venv/bin/python bench/classifier.py [--run runs/demo] [--batch 512] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_specs import specs
from filters.classifier_train import train
from filters.normalize import model_text
from filters.quality import QualityClassifier, load_classifier, make_vectorizer
from sources.stage import load_sources


def ensure_sources(run: Path) -> None:
    if not (run / "sources").exists():
        from glamkit.recipe import layout

        layout(run, specs.spec_path("mixtures", "demo")).run(only=["sources"])


def best_times(fns: list, inputs: list[list], batch: int, repeats: int) -> list[float]:
    """Best wall time of each fn over its input in batches; the fns alternate within every repeat, so a slow spell
    on a shared machine hits both sides of a ratio alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, (fn, texts) in enumerate(zip(fns, inputs, strict=True)):
            start = time.perf_counter()
            for i in range(0, len(texts), batch):
                fn(texts[i : i + batch])
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def bare_fn(clf: QualityClassifier):
    if clf.backend == "fasttext":
        return lambda prepared: clf.model.predict(prepared)
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression()
    lr.coef_, lr.intercept_, lr.classes_ = clf.coef[None, :], np.array([clf.intercept]), np.array([0, 1])
    vectorizer = make_vectorizer(clf.params)
    return lambda prepared: lr.predict_proba(vectorizer.transform(prepared))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    ensure_sources(args.run)
    docs = load_sources(args.run)
    texts = [d.text for source in docs.values() for d in source]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    rows = []
    for name in ("demo", "demo-sklearn"):
        spec = specs.load("classifier", name)
        model_dir = args.run / "bench-classifier" / name
        train(spec, docs, model_dir)
        clf = load_classifier(model_dir)
        prepared = [model_text(t, clf.max_chars) for t in texts]
        ours, bare = best_times([clf.score, bare_fn(clf)], [texts, prepared], args.batch, args.repeats)
        rows.append((spec.backend, len(texts) / ours, mb / ours, len(texts) / bare, mb / bare, bare / ours))
    print(f"{len(texts)} real documents, {mb:.1f} MB, batch {args.batch}, best of {args.repeats}, 1 thread")
    print("| backend | score docs/s | score MB/s | bare docs/s | bare MB/s | score / bare |")
    print("|---|---:|---:|---:|---:|---:|")
    for backend, d, m, bd, bm, ratio in rows:
        print(f"| {backend} | {d:,.0f} | {m:.1f} | {bd:,.0f} | {bm:.1f} | {ratio:.0%} |")
    fasttext_ratio = rows[0][-1]
    print(f"target: fastText score >= 90% of bare: {'met' if fasttext_ratio >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
    main()
