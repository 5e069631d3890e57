"""A real multi-host run: two processes on localhost (jax.distributed, gloo CPU collectives, 4 devices each).

Against one process with 8 devices on the same (data=2, expert=4) mesh: SIGTERM to one of the two processes makes
both save the same step and exit 143; every loss the two processes log, before the preemption and after restarting
both, equals the one-process run's (so two processes train as one does, and resume it exactly); restarting the same
checkpoint as one 8-device process continues with the same next global batch.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.train.conftest import FAST
from train.metrics import read_metrics

SETTINGS = {**FAST, "seq_len": 32, "steps": 8, "checkpoint.every": 100, "mesh.data": 2, "mesh.expert": 4}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(run: Path, shards: Path, devices: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    sets = [f"{k}={v}" for k, v in SETTINGS.items()]
    command = [sys.executable, "-m", "tests.train.run_trainer", str(run), str(shards), *extra, *sets]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _two_hosts(run: Path, shards: Path, *extra: str) -> list[subprocess.Popen]:
    port = _free_port()
    return [_start(run, shards, 4, ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                                    "--process-id", str(i), *extra]) for i in (0, 1)]


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        out.append((proc.returncode, stdout, stderr))
    return out


def _summary(stdout: str) -> dict:
    return json.loads(stdout.split("SUMMARY ", 1)[1].splitlines()[0])


def _losses(run: Path) -> np.ndarray:
    return np.array([(r["step"], r["loss"], r["ce"], r["grad_norm"]) for r in read_metrics(run)])


def _close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_array_equal(got[:, 0], want[:, 0])  # the same steps
    np.testing.assert_allclose(got[:, 1:], want[:, 1:], rtol=1e-5, atol=0)


@pytest.mark.slow
def test_two_processes_match_one_and_survive_preemption(demo_shards, tmp_path):
    one = _finish([_start(tmp_path / "one", demo_shards, 8, [])])[0]
    assert one[0] == 0, one[2][-3000:]
    reference = _losses(tmp_path / "one")
    assert reference[:, 0].tolist() == list(range(1, 9))

    run = tmp_path / "preempted"
    procs = _two_hosts(run, demo_shards, "--step-delay", "0.3")
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        if (run / "metrics.jsonl").exists() and read_metrics(run) and read_metrics(run)[-1]["step"] >= 3:
            break
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)  # a preemption notice reaches one host only
    stopped = _finish(procs)
    assert [rc for rc, _, _ in stopped] == [143, 143], stopped[0][2][-2000:] + stopped[1][2][-2000:]
    steps = {_summary(stdout)["steps"] for _, stdout, _ in stopped}
    assert len(steps) == 1  # both saved the same step
    step = steps.pop()
    assert 3 <= step < 8
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == [step]
    _close(_losses(run), reference[:step])  # two processes, up to the preemption
    shutil.copytree(run, tmp_path / "preempted-copy")

    resumed = _finish(_two_hosts(run, demo_shards))
    assert [rc for rc, _, _ in resumed] == [0, 0], resumed[0][2][-3000:]
    _close(_losses(run), reference)

    alone = _finish([_start(tmp_path / "preempted-copy", demo_shards, 8, [])])[0]  # 8 devices, one process
    assert alone[0] == 0, alone[2][-3000:]
    assert _summary(alone[1])["data_position"] == 8
    _close(_losses(tmp_path / "preempted-copy"), reference)
