"""What each Beam job checks in the files it wrote, after the runner reports success and before its stage publishes
them: a runner can report success having skipped a branch of the graph (Beam 2.77's DaskRunner computes only the
last one), and the counters that conservation is checked on would not show it. The checks read file footers
(Parquet, Arrow IPC) and the small side files, not the documents or tokens. A failure raises OutputCheckError, one
line naming what is missing or does not add up; the stage runner then renames nothing and writes no marker.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from pipelines.curate.schema import shard_name

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
def check_curated(plan: Any, stats: Mapping[str, Any], files: Mapping[str, str]) -> None:
    """RUN/curated (a CuratePlan's out_dir): every component's document and dropped shards exist and hold
    stats.json's kept and dropped counts; the samples file holds min(dropped, samples_per_reason) per (component,
    reason); the dead letter holds every errored record. `files`: the samples' and dead letter's names."""
    out_dir, num_shards = plan.out_dir, plan.num_shards
    missing: list[str] = []
    wrong: list[str] = []
    components = stats["components"]
    absent_stats = [c for c in plan.components if c not in components]
    if absent_stats:
        wrong.append(f"stats.json has no component {', '.join(absent_stats)}")
    for component in plan.components:
        c = components.get(component, {"kept": 0, "dropped": {}})
        for kind, expected in (("documents", c["kept"]), ("dropped", sum(c["dropped"].values()))):
            paths = [f"{kind}/{component}/{shard_name(num_shards, s)}" for s in range(num_shards)]
            absent = [p for p in paths if not fileio.exists(f"{out_dir}/{p}")]
            missing += absent
            rows = sum(parquet_rows(f"{out_dir}/{p}") for p in paths if p not in absent)
            if not absent and rows != expected:
                wrong.append(f"{kind}/{component} holds {rows} rows, stats.json counts {expected}")
    samples, dead = files["samples"], files["dead"]
    if not fileio.exists(f"{out_dir}/{samples}"):
        missing.append(samples)
    else:
        got = Counter((r["component"], r["drop_reason"]) for r in jsonl_gz_rows(f"{out_dir}/{samples}"))
        want = Counter({(comp, reason): min(n, plan.samples_per_reason) for comp, c in components.items()
                        for reason, n in c["dropped"].items()})
        if got != want:
            wrong.append(f"{samples} holds {sum(got.values())} samples, stats.json implies {sum(want.values())}")
    if not fileio.exists(f"{out_dir}/{dead}"):
        missing.append(dead)
    else:
        errored = sum(c["errored"] for c in components.values())
        rows = len(jsonl_gz_rows(f"{out_dir}/{dead}"))
        if rows != errored:
            wrong.append(f"{dead} holds {rows} records, stats.json counts {errored} errored")
    fail_if("curate", missing, wrong)


# ------------------------------------------------------------------------------------------------ mix
def check_shards(out_dir: str, listed: Mapping[str, int], expected: Mapping[str, int]) -> None:
    """RUN/shards: `listed` (the manifest's shard files -> rows) is exactly `expected` (file -> the rows the split's
    layout gives it), and each file exists and holds that many rows (sequences); no other shard file is there."""
    missing: list[str] = []
    wrong: list[str] = []
    if dict(listed) != dict(expected):
        odd = sorted(set(listed.items()) ^ set(expected.items()))
        wrong.append(f"the manifest lists {len(listed)} shards, the layout gives {len(expected)} "
                     f"(differing: {', '.join(f'{f} ({n} rows)' for f, n in odd[:LISTED])})")
    for name, rows in sorted(expected.items()):
        path = f"{out_dir}/{name}"
        if not fileio.exists(path):
            missing.append(name)
        elif (got := ipc_rows(path)) != rows:
            wrong.append(f"{name} holds {got} sequences, expected {rows}")
    stray = sorted(p.name for p in Path(out_dir).glob("*.arrow") if p.name not in expected)
    if stray:
        wrong.append(f"shard files no split accounts for: {', '.join(stray[:LISTED])}")
    fail_if("mix", missing, wrong)
