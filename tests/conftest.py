"""Shared test set-up. Tests run offline: `datasets` must never reach for the hub."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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
    from glamkit.pipeline import layout

    run = tmp_path_factory.mktemp("demo-run")
    layout(run, spec_path("mixtures", "demo")).run(only=["sources"])
    return run


@pytest.fixture(scope="session")
def demo_run(demo_sources_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo recipe through the `report` stage (tasks, classifier, curated, tokenizer, shards, report), built
    once per session through the stage runner on the shared sources. Tests that change it must restore it."""
    import shutil

    from data_specs.specs import spec_path
    from glamkit.pipeline import layout

    run = tmp_path_factory.mktemp("demo-full") / "run"
    shutil.copytree(demo_sources_run / "sources", run / "sources")
    layout(run, spec_path("mixtures", "demo")).run(only=["report"])
    return run
