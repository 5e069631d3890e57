"""Measure a benchmark command's whole process tree: wall time, CPU time and peak RSS (Beam and datatrove start
worker processes, so the parent's own figures would miss most of the work)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure_tree(cmd: list[str]) -> tuple[float, float, float, dict]:
    """Run a command: wall seconds, CPU seconds (user + system) and peak RSS (MB) of its whole process tree, sampled
    every 50 ms (CPU seconds hold whatever else loads the machine), and the JSON it wrote."""
    import psutil

    cpu_by_pid: dict[int, float] = {}
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        start = time.perf_counter()
        proc = subprocess.Popen([*cmd, "--result", result.name], cwd=REPO, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu_by_pid[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            peak = max(peak, rss)
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        err = proc.stderr.read()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
        return seconds, sum(cpu_by_pid.values()), peak / 1e6, json.loads(Path(result.name).read_text())

