"""A command that reads a run, given a run folder that does not exist, fails in one line with exit 1 and creates
nothing; a stage that raises leaves neither its temporary folder nor the run's lock behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_specs.stages import RunLayout, Stage, StageContext
from tests.glamkit.cli_helpers import run_cli

READERS = [
    ["stages"], ["sources", "stats"], ["classifier", "train"], ["classifier", "eval"], ["classifier", "calibrate"],
    ["curate"], ["tokenizer", "train"], ["mix"], ["report"], ["eval"],
]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_missing_run_is_one_line_exit_1_and_creates_nothing(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "missing"
    code, _, err = run_cli([*command, "--run", str(missing)])
    assert code == 1
    assert err.strip().count("\n") == 0 and f"no run folder {missing}" in err, err
    assert "internal error" not in err
    assert not missing.exists() and not missing.parent.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_stage_that_raises_leaves_no_temp_folder_and_no_lock(tmp_path: Path) -> None:
    def fails(ctx: StageContext) -> None:
        (ctx.out / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")

    run = RunLayout(tmp_path, [Stage("broken", fails)])
    with pytest.raises(RuntimeError, match="boom"):
        run.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]  # the stage's log says what happened


def test_dry_run_plans_without_writing(tmp_path: Path) -> None:
    def writes(ctx: StageContext) -> None:
        (ctx.out / "x").write_text("x")

    run = RunLayout(tmp_path / "run", [Stage("a", writes), Stage("b", writes, needs=("a",))])
    assert run.plan(["b"], ["b"]) == [("a", "run"), ("b", "forced")]
    assert not (tmp_path / "run").exists()
    run.run()
    assert run.plan() == [("a", "skip"), ("b", "skip")]
