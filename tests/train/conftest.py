"""Shared fixtures: token shards built once per session from the real demo corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

# Small, fast settings on top of data_specs/train/tiny.yaml (the tiny-moe preset) for 2 CPU cores.
# Every trainer test runs the memory plan's features: scanned layers (the preset's), full remat and FSDP.
FAST = {"seq_len": 32, "batch_size": 8, "log_every": 1, "eval_every": 1000, "eval_batches": 2, "prefetch": 2,
        "model_overrides.remat": "full", "model_overrides.fsdp": True}


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(jax_compilation_cache: Path) -> Path:
    """The session's persistent XLA cache (tests/conftest.py) for every trainer test."""
    return jax_compilation_cache


@pytest.fixture(scope="session")
def demo_shards(demo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo's real token shards (the session's demo run, tests/conftest.py), so training
    tests never see another test rewriting them."""
    import shutil

    copy = tmp_path_factory.mktemp("train-shards") / "shards"
    shutil.copytree(demo_run / "shards", copy)
    return copy
