"""What the curate job checks in the files it wrote, after the runner reports success (pipelines.beam.checks):
every shard, sample and dead-letter file exists and holds the rows stats.json counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from data_specs import io as fileio
from pipelines.beam.checks import fail_if, jsonl_gz_rows, parquet_rows
from pipelines.curate.schema import shard_name


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
