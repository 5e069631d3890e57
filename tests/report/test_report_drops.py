"""The report answers "what was dropped and why" in numbers, on the session's demo run (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_specs import specs
from pipelines.curate.schema import DROP_REASONS
from report.drops import REPEAT_WARN_EPOCHS, keep_sentence, repeat_warnings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(demo_run: Path) -> dict:
    return json.loads((demo_run / "report" / "report.json").read_text())


@pytest.fixture(scope="module")
def curated(demo_run: Path) -> dict:
    return json.loads((demo_run / "curated" / "stats.json").read_text())


def test_the_drop_table_sums_to_the_stats_dropped_counts_per_component(report: dict, curated: dict) -> None:
    table = report["drop_table"]
    for comp, stats in curated["components"].items():
        assert sum(row["counts"][comp] for row in table["rows"]) == sum(stats["dropped"].values())
        assert table["dropped"][comp] == sum(stats["dropped"].values())
        assert table["errored"][comp] == stats["errored"]  # the dead letter is apart, not a drop reason
    order = [DROP_REASONS.index(row["reason"]) for row in table["rows"]]
    assert order == sorted(order)  # stage order: eval holdout, language, rules, dedup, decontamination, quality
    stages = [row["stage"] for row in table["rows"]]
    assert stages[0] == "eval holdout" and stages[-1] == "quality"
    assert all(row["threshold"] and row["total"] == sum(row["counts"].values()) for row in table["rows"])


def test_each_drop_names_its_threshold(report: dict) -> None:
    rows = {row["reason"]: row for row in report["drop_table"]["rows"]}
    assert rows["min_words"]["thresholds"]["web"] == "min_words = 50"
    assert rows["min_words"]["thresholds"]["conversations"] == "min_words = 20"  # per component, as the spec says
    assert rows["eval_holdout"]["threshold"] == "5% of documents held out for eval tasks"
    assert rows["quality"]["threshold"].startswith(report["keep_rule_applied"]["applied"])
    assert "auto" in rows["quality"]["threshold"]  # the demo fits alpha: the table says both
    assert "60 x 2" in rows["near_duplicate"]["threshold"] and "13-gram" in rows["contaminated"]["threshold"]


def test_kept_documents_and_tokens_per_source(report: dict, curated: dict, demo_run: Path) -> None:
    sources = report["sources"]
    spec = specs.load("mixtures", "demo")
    assert set(sources) == {s for c in spec.components.values() for s in c.sources}
    for comp, stats in curated["components"].items():
        mine = {n: v for n, v in sources.items() if v["component"] == comp}
        assert sum(v["kept"] for v in mine.values()) == stats["kept"]
        assert all((v["tokens_kept"] > 0) == (v["kept"] > 0) for v in mine.values())
    manifest = json.loads((demo_run / "shards" / "manifest.json").read_text())
    for comp, m in manifest["components"].items():  # kept tokens (both splits) >= the train split available
        kept = sum(v["tokens_kept"] for v in sources.values() if v["component"] == comp)
        assert kept >= m["tokens_available"]


def test_the_page_says_it_in_words(demo_run: Path, report: dict) -> None:
    page = (demo_run / "report" / "report.html").read_text()
    for anchor in ('id="drop-table"', 'id="keep-sentence"', 'id="classifier-settings"', 'id="dedup-settings"',
                   'id="source-table"', 'id="keep-rates"'):
        assert anchor in page
    assert "held-out-by-host ROC-AUC" in page and "leave-one-source-out ROC-AUC" in page
    assert report["keep_sentence"].startswith("Pareto keep rule, alpha")
    for warning in report["repeat_warnings"]:
        assert f"warning: {warning}" in page


def test_repeat_warnings_and_the_keep_sentence() -> None:
    comps = {"web": {"epochs": 8.46, "realised_weight": 0.42, "documents_available": 41},
             "books": {"epochs": REPEAT_WARN_EPOCHS, "realised_weight": 0.2, "documents_available": 70}}
    assert repeat_warnings(comps) == ["web: 42% of training tokens from 41 documents, 8.5 epochs"]
    sentence = keep_sentence({"kind": "pareto", "alpha": 3.0, "applied": "pareto alpha 3"})
    assert "(2 - s)^-3" in sentence and "12.5% of pages scoring 0" in sentence
    assert keep_sentence(None) == "No component is quality-filtered."
