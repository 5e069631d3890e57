"""What a run reports: `metrics.jsonl`, `timings.jsonl`, TensorBoard events and a progress bar.

`metrics.jsonl` holds only values that are a function of config + seed (losses, learning rate, grad norm,
expert load, ...), one object per logged step, so two runs of the same config compare byte for byte, and a
resumed run rewrites it from the restored step. Wall-clock values (tokens/s, MFU, step time) go to
`timings.jsonl` and TensorBoard, whose event files carry timestamps anyway.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

# Dense bfloat16 peak FLOP/s per device, for the MFU estimate (device_kind substring -> FLOP/s).
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12),
    ("A10", 125e12), ("V100", 125e12), ("TPU v6", 918e12), ("TPU v5p", 459e12), ("TPU v5", 197e12),
    ("TPU v4", 275e12), ("TPU v3", 123e12),
)


def peak_flops_per_device(device: Any, override: float | None = None) -> float:
    """Peak FLOP/s of one device: the override, a known accelerator, or for CPUs cores x clock x SIMD width."""
    if override:
        return float(override)
    kind = str(getattr(device, "device_kind", ""))
    for name, flops in PEAK_FLOPS:
        if name.lower() in kind.lower():
            return flops
    return cpu_peak_flops()


def cpu_peak_flops() -> float:
    """A rough fp32 peak for the CPU cores this process may use: FMA on 512- or 256-bit vectors, 2 units."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        freq = psutil.cpu_freq()
        ghz = (freq.max or freq.current) / 1000 if freq and (freq.max or freq.current) else 2.5
    except Exception:
        ghz = 2.5
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    per_cycle = 64 if "avx512f" in flags else 32  # 2 FMA units x (16 or 8) fp32 lanes x 2 FLOPs
    return cores * ghz * 1e9 * per_cycle


def to_json_value(value: Any) -> Any:
    """Arrays and numpy scalars -> plain floats/ints/lists (full precision: runs are compared exactly)."""
    if isinstance(value, np.ndarray) or hasattr(value, "tolist"):
        value = np.asarray(value).tolist()
    if isinstance(value, list):
        return [to_json_value(v) for v in value]
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    return value


class MetricsLogger:
    """Writes metrics.jsonl (deterministic), timings.jsonl (wall clock) and TensorBoard under `run_dir`."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def truncate_after(self, step: int) -> None:
        """Drop records after `step` (a resumed or rolled-back run rewrites them)."""
        for path in (self.metrics_path, self.run_dir / "timings.jsonl"):
            if not self.enabled or not path.exists():
                continue
            keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            path.write_text("".join(line + "\n" for line in keep))

    def log(self, step: int, metrics: dict[str, Any], timings: dict[str, Any] | None = None) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: to_json_value(v) for k, v in metrics.items()}}
        _append(self.metrics_path, record)
        if timings:
            _append(self.run_dir / "timings.jsonl", {"step": step, **{k: to_json_value(v) for k, v in timings.items()}})
        if self._tb is not None:
            for key, value in {**metrics, **(timings or {})}.items():
                self._scalars(key, value, step)
            self._tb.flush()

    def _scalars(self, key: str, value: Any, step: int) -> None:
        arr = np.asarray(value, dtype=np.float64)
        if key == "expert_load":  # [moe layer, expert]
            for layer, row in enumerate(arr):
                for e, v in enumerate(row):
                    self._tb.add_scalar(f"moe/layer{layer}/expert{e:02d}_load", float(v), step)
        elif arr.ndim == 1:  # per MoE layer
            for layer, v in enumerate(arr):
                self._tb.add_scalar(f"moe/layer{layer}/{key}", float(v), step)
        elif arr.ndim == 0:
            self._tb.add_scalar(key, float(arr), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]
