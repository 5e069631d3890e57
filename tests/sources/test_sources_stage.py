"""The sources stage: every component read, stats per component, ids unique and bytes identical across runs,
a rerun skipped, the CLI's table and JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from data_specs.records import COMPONENTS
from data_specs.specs import spec_path
from glamkit.recipe import layout
from sources.stage import load_stats
from tests.conftest import PYTHON, REPO


def glamkit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([PYTHON, "-m", "glamkit.cli", *args], cwd=REPO, env=env, capture_output=True, text=True)


def test_every_component_has_documents_and_ids_are_unique(demo_sources_run: Path) -> None:
    stats = load_stats(demo_sources_run / "sources")
    assert set(stats["components"]) == set(COMPONENTS)
    for comp, t in stats["components"].items():
        assert t["documents"] > 0 and t["words"] > t["documents"] and t["bytes"] > t["words"], comp
    ids: set[str] = set()
    total = 0
    for name in stats["sources"]:
        for line in __import__("gzip").open(demo_sources_run / "sources" / f"{name}.jsonl.gz", "rt"):
            record = json.loads(line)
            assert record["source"] == name and {"language", "language_score", "group"} <= set(record["meta"])
            ids.add(record["id"])
            total += 1
    assert len(ids) == total == sum(t["documents"] for t in stats["components"].values())


def test_rerun_is_skipped(demo_sources_run: Path) -> None:
    results = layout(demo_sources_run, spec_path("mixtures", "demo")).run(only=["sources"])
    assert [(r.name, r.state) for r in results] == [("sources", "skipped")]


@pytest.mark.slow
def test_a_second_run_writes_identical_bytes(demo_sources_run: Path, tmp_path: Path) -> None:
    """Same inputs -> same files, whatever the process pool did (the second run reads in one process)."""
    from sources.resolve import mixture_sources
    from sources.stage import read_sources

    read_sources(mixture_sources("demo"), tmp_path, workers=1)
    first = demo_sources_run / "sources"
    names = sorted(p.name for p in first.iterdir() if p.name != "_COMPLETE.json")
    assert names == sorted(p.name for p in tmp_path.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_stats_cli_prints_the_table_and_json(demo_sources_run: Path) -> None:
    out = glamkit("sources", "stats", "--run", str(demo_sources_run))
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["component", "documents", "pages", "feed", "items", "sms", "groups", "words", "bytes",
                              "errors", "sources"]
    assert [r.split()[0] for r in rows[:6]] == list(COMPONENTS)
    js = json.loads(glamkit("sources", "stats", "--run", str(demo_sources_run), "--json").stdout)
    assert js["components"]["wikipedia"]["documents"] == 111
    assert set(js["components"]["web"]) >= {"documents", "words", "bytes", "errors", "kinds", "groups",
                                            "largest_group"}


def test_stats_of_a_folder_without_a_run_is_a_one_line_error(tmp_path: Path) -> None:
    out = glamkit("sources", "stats", "--run", str(tmp_path))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "glamkit sources read" in out.stderr


# ------------------------------------------------------------------------------------------------ sources a recipe uses
SMALL_MIXTURE = """
name: own-web
seed: 7
components:
  web:   {{weight: 0.5, quality_filter: true, sources: [common-crawl-sample]}}
  books: {{weight: 0.5, sources: [botchan]}}
quality:
  classifier: {classifier}
  keep: {{kind: pareto, alpha: 3, seed: 7}}
"""
SMALL_CLASSIFIER = """
name: own-web-clf
seed: 7
positives: [{{source: botchan}}]
negatives: [{{source: common-crawl-sample}}, {{source: {negative}}}]
"""


def _mixture(tmp_path: Path, negative: str) -> Path:
    clf = tmp_path / "clf.yaml"
    clf.write_text(SMALL_CLASSIFIER.format(negative=negative))
    mixture = tmp_path / "mixture.yaml"
    mixture.write_text(SMALL_MIXTURE.format(classifier=clf))
    return mixture


def test_the_sources_stage_reads_what_the_classifier_spec_names(tmp_path: Path) -> None:
    """A mixture whose web sources differ from its classifier's: the classifier's own are read too, marked, and
    left out of the mixture's component totals and of the eval tasks."""
    from dataclasses import replace

    from data_specs import specs
    from eval.stage import make_tasks
    from sources.read import format_table
    from sources.resolve import recipe_sources

    mixture = _mixture(tmp_path, "trafilatura-pages")
    assert [s.name for s in recipe_sources(mixture)] == ["common-crawl-sample", "botchan", "trafilatura-pages"]
    run = tmp_path / "run"
    assert [r.state for r in layout(run, mixture).run(only=["sources"])] == ["ran"]
    stats = load_stats(run / "sources")
    assert stats["sources"]["trafilatura-pages"]["for"] == "classifier" and "for" not in stats["sources"]["botchan"]
    assert stats["sources"]["trafilatura-pages"]["documents"] > 0
    assert stats["components"]["web"]["sources"] == ["common-crawl-sample"]
    assert "read for the quality classifier only: trafilatura-pages (web, " in format_table(stats)
    everything = replace(specs.load("mixtures", mixture), eval_holdout_fraction=1.0)  # every document held out
    tasks, _ = make_tasks(run / "sources", everything)
    sources = {ex["doc_id"].split("/")[0] for split in tasks["heldout"].values() for ex in split}
    assert sources == {"common-crawl-sample", "botchan"}  # the mixture's; never the classifier's own


def test_a_source_without_a_spec_is_named_with_the_spec_asking_for_it(tmp_path: Path) -> None:
    from data_specs.errors import GlamkitError
    from sources.resolve import recipe_sources

    mixture = _mixture(tmp_path, "my-crawl")
    with pytest.raises(GlamkitError, match=r"classifier own-web-clf \(.*clf\.yaml\) uses source 'my-crawl', which "
                                           r"has no spec: add data_specs/sources/my-crawl\.yaml"):
        recipe_sources(mixture)
