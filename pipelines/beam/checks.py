"""The checks every Beam job makes on the files it wrote (each job's own: pipelines.curate.checks,
pipelines.mix.job.check_shards), after the runner reports success and before its stage publishes
them: a runner can report success having skipped a branch of the graph (Beam 2.77's DaskRunner computes only the
last one), and the counters that conservation is checked on would not show it. The checks read file footers
(Parquet, Arrow IPC) and the small side files, not the documents or tokens. A failure raises OutputCheckError, one
line naming what is missing or does not add up; the stage runner then renames nothing and writes no marker.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_specs import io as fileio
from data_specs.errors import GlamkitError

LISTED = 5  # missing files named in the message (then "and N more")


class OutputCheckError(GlamkitError):
    """A job's written outputs do not match what it counted: nothing is published."""


def run_to_completion(pipeline: Any, job: str) -> None:
    """Run a Beam pipeline and wait; a job that ends in any state but DONE fails in one line."""
    state = pipeline.run().wait_until_finish()
    if str(state) not in ("DONE", "PipelineState.DONE"):
        raise GlamkitError(f"{job}: the Beam job ended in state {state}")


def parquet_rows(path: str) -> int:
    """Rows of a Parquet file, from its footer."""
    with fileio.open_read(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


def jsonl_gz_rows(path: str) -> list[dict[str, Any]]:
    with fileio.open_read(path) as raw, gzip.GzipFile(fileobj=raw) as f:
        return [json.loads(line) for line in f if line.strip()]


def ipc_rows(path: str) -> int:
    """Rows of an Arrow IPC file (memory-mapped: record batch headers only)."""
    with pa.memory_map(path) as source:
        reader = pa.ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def fail_if(job: str, missing: Iterable[str], wrong: Iterable[str]) -> None:
    """One line: the missing files (the first LISTED) and every mismatch."""
    missing, wrong = list(missing), list(wrong)
    if not missing and not wrong:
        return
    parts = []
    if missing:
        more = f" and {len(missing) - LISTED} more" if len(missing) > LISTED else ""
        parts.append(f"missing {', '.join(missing[:LISTED])}{more}")
    parts += wrong
    raise OutputCheckError(f"{job}: the job reported success but its outputs are incomplete, nothing is published: "
                           + "; ".join(parts))


# ------------------------------------------------------------------------------------------------ curate
