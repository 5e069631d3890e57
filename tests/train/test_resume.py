"""Killed runs resume to exactly the losses of an uninterrupted one (child processes: SIGKILL is real)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.train.conftest import FAST
from train.metrics import read_metrics

SETTINGS = {**FAST, "seq_len": 32, "steps": 8, "checkpoint.every": 3, "checkpoint.keep": 2}


def _command(run: Path, shards: Path, *extra: str) -> list[str]:
    sets = [f"{k}={v}" for k, v in SETTINGS.items()]
    return [sys.executable, "-m", "tests.train.run_trainer", str(run), str(shards), *extra, *sets]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "XLA_FLAGS": ""}


def _run(run: Path, shards: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(run, shards, *extra), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)


def _kill_after_step(run: Path, shards: Path, step: int) -> None:
    """Start a run and SIGKILL it as soon as metrics.jsonl shows `step` (a checkpoint exists before it)."""
    proc = subprocess.Popen(_command(run, shards), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 500
        while time.monotonic() < deadline and proc.poll() is None:
            path = run / "metrics.jsonl"
            if path.exists() and any(r["step"] >= step for r in read_metrics(run)):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_losses(demo_shards, tmp_path):
    reference = _run(tmp_path / "reference", demo_shards)
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = read_metrics(tmp_path / "reference")
    assert [r["step"] for r in expected] == list(range(1, 9))

    run = tmp_path / "killed"
    _kill_after_step(run, demo_shards, 4)  # killed between checkpoints (the one at step 3 is committed)
    died = _run(run, demo_shards, "--die-in-save", "6")  # resumes at 3, then dies inside the save of step 6
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    assert list((run / "checkpoints").glob("6.orbax-checkpoint-tmp*")), "the save of step 6 was not interrupted"
    resumed = _run(run, demo_shards)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "6.orbax-checkpoint-tmp" in resumed.stderr  # the incomplete save is named in the warning
    summary = json.loads(resumed.stdout.split("SUMMARY ", 1)[1])
    assert summary["steps"] == 8 and summary["data_position"] == 8

    got = read_metrics(run)
    assert [r["step"] for r in got] == list(range(1, 9))
    for want, have in zip(expected, got, strict=True):  # every value, bit for bit, including steps 4-8
        assert have == want, f"step {want['step']} differs after resume"


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_stops(demo_shards, tmp_path):
    run = tmp_path / "run"
    command = _command(run, demo_shards)
    command[command.index("checkpoint.every=3")] = "checkpoint.every=100"
    proc = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    deadline = time.monotonic() + 500
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").exists() and read_metrics(run):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    summary = json.loads(out.split("SUMMARY ", 1)[1])
    assert summary["interrupted"] and 1 <= summary["steps"] < 8
    assert (run / "checkpoints" / str(summary["steps"]) / "glamkit_files.json").exists()
