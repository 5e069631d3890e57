"""A trained tiny run for the lm-eval backend: real tokenizer, real task YAMLs, a real (2-step) checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.conftest import FAST

# The trainer tests' tiny-moe settings (so the persistent cache compiles one train step for both), 2 steps: a
# 32-token context, so held-out documents and long next-sentence choices are scored in several windows.
TINY = {**FAST, "steps": 2}


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(jax_compilation_cache: Path) -> Path:
    """The session's persistent XLA cache (tests/conftest.py): each scorer's programs compile once."""
    return jax_compilation_cache


@pytest.fixture(scope="session")
def eval_run(demo_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding the demo run's tokenizer and tasks (links) and a train stage of 2 steps, trained through
    the real train stage and checkpointed by Orbax, as `glamkit run` leaves it."""
    from data_specs.stages import RunLayout, Stage
    from train.stage import train_stage

    run = tmp_path_factory.mktemp("eval-run") / "run"
    run.mkdir()
    for name in ("tokenizer", "tasks"):
        (run / name).symlink_to(demo_run / name)
    stage = Stage("train", lambda ctx: train_stage(ctx, "tiny", demo_run / "shards", TINY, progress=False),
                  config=TINY)
    RunLayout(run, [stage]).run()
    return run
