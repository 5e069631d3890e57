"""Keeping the in-process runner's memory to what the current stage needs.

Two things make a long job on Beam's in-process runner (FnApiRunner) hold memory it no longer uses; on
bench/dedup.py's 16x input, dealing with both took the job's peak RSS from 417 to 323 MiB (221 MiB at 1x):

- The SDK worker caches one bundle processor per stage for reuse, and each keeps the output buffer of its last
  bundle: one per output, as large as what the stage emitted (up to Beam's 10 MB flush size). Beam drops processors
  idle for `DEFAULT_BUNDLE_PROCESSOR_CACHE_SHUTDOWN_THRESHOLD_S` (60 s); a job of a hundred stages that each run once
  keeps them all. `release_idle_stages` shortens that to IDLE_STAGE_SECONDS.
- glibc keeps freed heap memory for reuse instead of returning it to the system; what a finished stage freed is still
  counted in the process's RSS. `return_freed_memory` (malloc_trim) gives it back; the DoFns that start a stage
  holding the big shuffles (pipelines.beam.buffered) call it in start_bundle.

Both are no-ops where they do not apply (another runner in another process, a libc without malloc_trim).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

IDLE_STAGE_SECONDS = 1.0  # a cached bundle processor idle this long is dropped (Beam's default: 60 s)


def release_idle_stages(seconds: float = IDLE_STAGE_SECONDS) -> None:
    """Make the SDK workers started in this process from now on drop bundle processors idle for `seconds`."""
    from apache_beam.runners.worker import sdk_worker

    sdk_worker.DEFAULT_BUNDLE_PROCESSOR_CACHE_SHUTDOWN_THRESHOLD_S = seconds


@functools.cache
def _malloc_trim() -> object | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> None:
    """Give the heap memory freed so far back to the operating system (glibc's malloc_trim; a few ms)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)  # type: ignore[operator]
