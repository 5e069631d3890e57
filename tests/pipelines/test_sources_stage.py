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
from glamkit.pipeline import layout
from pipelines.sources_stage import load_stats
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
    from pipelines.sources import mixture_sources
    from pipelines.sources_stage import read_sources

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
