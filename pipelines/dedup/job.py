"""Dedup's two entry points: the curate job's hook (`dedup_stage`: Curated items in, the same items out, with
verdicts applied) and the standalone job over document files (`dedup_files_job`)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam

from data_specs import io as fileio
from data_specs.records import read_documents
from data_specs.specs import DedupSpec
from pipelines.beam.checks import fail_if, run_to_completion
from pipelines.beam.memory import return_freed_memory
from pipelines.beam.options import pipeline_options
from pipelines.dedup.config import DedupConfig, config_for, describe, node_of
from pipelines.dedup.features import CuratedFeatures, read_features
from pipelines.dedup.summary import SummaryFn, finish_summary, snippet, task_stats, top_roots
from pipelines.dedup.transforms import DedupVerdicts, verdict_index, verdict_of, verdict_rows

log = logging.getLogger("glamkit.dedup")


def dedup_stage(plan: Any, alive: Any) -> tuple[Any, Any]:
    """The curate job's dedup stage (pipelines.curate.job.build): Curated items in, the same items out, the alive
    ones that are duplicates or contaminated as copies with drop_reason set, plus a one-element PCollection: the
    summary. Items already dropped or errored pass through untouched."""
    config: DedupConfig = plan.dedup
    feats = alive | "DedupFeatures" >> beam.ParDo(CuratedFeatures(config))
    verdicts, parts = feats | "DedupVerdicts" >> DedupVerdicts(config)
    acc = parts | "DedupParts" >> beam.Flatten() | "DedupSummary" >> beam.CombineGlobally(SummaryFn())
    snippets = alive | "DedupSnippets" >> beam.FlatMap(snippet, beam.pvalue.AsSingleton(
        acc | "TopRoots" >> beam.Map(top_roots)))
    stats = task_stats(config)
    summary = acc | "DedupFinish" >> beam.Map(lambda a, s: finish_summary(a, config.spec, s, stats),
                                              beam.pvalue.AsDict(snippets))
    items = alive | "DedupApply" >> beam.Map(_apply, config, beam.pvalue.AsSingleton(verdict_index(verdicts)))
    return items, summary


def _apply(item: Any, config: DedupConfig, index: tuple[bytes, bytes]) -> Any:
    """The item, or a copy of it with the verdict's drop_reason (never the item changed: DedupFeatures and
    DedupSnippets read the same elements, and a runner may hand them all one object)."""
    if item.alive:
        reason = verdict_of(index, node_of(config.rank_of(item.component), item.doc.id))
        if reason is not None:
            return dataclasses.replace(item, drop_reason=reason)
    return item


class _WriteSurvivors(beam.DoFn):
    """Re-read one input file and write the documents without a verdict: the join back by id, file by file."""

    def __init__(self, out_dir: str, config: DedupConfig) -> None:
        self.out_dir = out_dir
        self.config = config

    def start_bundle(self) -> None:
        return_freed_memory()  # the last stage: what the clustering stages freed goes back first

    def process(self, path: str, index: tuple[bytes, bytes]) -> Iterable[tuple[str, int]]:
        count = [0]

        def kept() -> Iterator[dict]:  # streamed: one document in memory at a time
            for d in read_documents(path):
                if verdict_of(index, node_of(self.config.rank_of(d.component), d.id)) is None:
                    count[0] += 1
                    yield d.to_dict()

        fileio.write_jsonl_gz(f"{self.out_dir}/documents/{Path(path).name}", kept())
        yield "kept", count[0]


def dedup_files_job(files: Sequence[str], out_dir: str | Path, spec: DedupSpec, beam_args: Sequence[str] = (),
                    task_dir: str | None = None) -> dict[str, Any]:
    """Dedup (and decontaminate) document files on their own: OUT/documents/<file> (survivors, same order),
    OUT/verdicts.jsonl.gz (dropped id, reason, survivor or tasks; sorted), OUT/summary.json. Returns the summary."""
    out_dir = str(out_dir)
    config = config_for(spec, task_dir)
    stats = task_stats(config)
    log.info("%s", describe(spec))
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    names = pipeline | "Files" >> beam.Create(sorted(files))
    feats = (
        names
        | "SpreadFiles" >> beam.Reshuffle()
        | "Features" >> beam.FlatMap(read_features, config, {})
    )
    verdicts, parts = feats | "DedupVerdicts" >> DedupVerdicts(config)
    kept = names | "WriteSurvivors" >> beam.ParDo(_WriteSurvivors(out_dir, config),
                                                  beam.pvalue.AsSingleton(verdict_index(verdicts)))
    parts.append(kept)
    (
        parts
        | "DedupParts" >> beam.Flatten()
        | "DedupSummary" >> beam.CombineGlobally(SummaryFn())
        | "WriteSummary" >> beam.Map(lambda acc: fileio.write_json(
            f"{out_dir}/summary.json", {**finish_summary(acc, spec, {}, stats), "kept": acc["counts"].get("kept", 0)},
            sort_keys=True, indent=2))
    )
    (
        verdicts
        | "VerdictPacks" >> beam.Map(lambda pack: (None, pack))
        | "VerdictsGroup" >> beam.GroupByKey()
        | "WriteVerdicts" >> beam.Map(lambda kv: fileio.write_jsonl_gz(
            f"{out_dir}/verdicts.jsonl.gz", verdict_rows(kv[1])))
    )
    run_to_completion(pipeline, "dedup")
    expected = ["summary.json", "verdicts.jsonl.gz", *(f"documents/{Path(f).name}" for f in sorted(files))]
    fail_if("dedup", [name for name in expected if not fileio.exists(f"{out_dir}/{name}")], [])
    return json.loads(Path(out_dir, "summary.json").read_text())
