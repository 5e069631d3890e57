"""The curate job (Beam): source documents in, curated documents out. Thin glue over `pipelines/curate/core.py`,
which calls the pure functions in `filters/` (normalize, rules, quality, keep).

    RUN/sources/<source>.{jsonl.gz,parquet}
      -> read raw records (batches)  -> reshuffle
      -> decode/schema check, eval holdout, normalise, language filter, heuristic rules  (core.pre_dedup)
      -> dedup: exact + near dedup, decontamination against RUN/tasks  (pipelines/dedup/)
      -> quality score + keep rule, quality-filtered components only            (core.score_batch, apply_keep)
      -> outputs, each file sorted and written under a temporary name, then renamed

Outputs in `OUT` (the stage runner's temporary folder, renamed to RUN/curated/ when the job succeeds):
    documents/<component>/part-SSSSS-of-NNNNN.parquet   kept documents, sharded by a hash of the id, sorted by id
                                                        (CURATED_SCHEMA: the document record + quality_score,
                                                        drop_reason = null); every shard exists, maybe empty
    dropped/<component>/part-SSSSS-of-NNNNN.parquet     every dropped document without its text (DROPPED_SCHEMA)
    samples/dropped.jsonl.gz                            up to K dropped documents per (component, reason), with text
    dead_letter.jsonl.gz                                records that could not be processed, with the reason
    stats.json                                          per component: read, kept, errored, dropped by reason,
                                                        bytes in/out, per-source counts, score histograms; `dedup`:
                                                        cluster sizes, largest clusters, contamination per task
Nothing in OUT depends on the runner, its parallelism or the clock: timings go to the stage log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam

from data_specs import io as fileio
from data_specs import progress
from data_specs.records import component_order
from data_specs.specs import MixtureSpec
from filters.quality import load_classifier
from pipelines.beam import checks as job_checks
from pipelines.beam.buffered import BufferedDoFn
from pipelines.beam.options import in_one_process, pipeline_options
from pipelines.curate import core, schema
from pipelines.curate import stats as curate_stats
from pipelines.curate.checks import check_curated
from pipelines.curate.plan import (
    DEFAULT_BATCH,
    DEFAULT_SAMPLES,
    DEFAULT_SHARDS,
    CuratePlan,
    classifier_dir_for,
    make_plan,
)
from pipelines.curate.schema import DEAD_LETTER_FILE, SAMPLES_FILE, STATS_FILE
from pipelines.dedup.config import describe
from pipelines.dedup.job import dedup_stage

log = logging.getLogger("glamkit.curate")
PROGRESS_COUNTER = "curate"  # documents read (data_specs.progress), shown by the stage while the job runs




# ------------------------------------------------------------------------------------------------ pipeline
def build(pipeline: Any, plan: CuratePlan) -> None:
    """Add the curate job's transforms to a Beam pipeline.

    Documents flow through one chain of ParDos (rules, dedup, scoring in batches, routing by outcome) with no
    Flatten: the in-process runner materialises every multi-input Flatten, i.e. encodes each document once more."""
    batches = (
        pipeline
        | "Splits" >> beam.Create(list(plan.splits))
        | "Read" >> beam.FlatMap(core.read_split, plan.batch_size)
    )
    if not in_one_process(pipeline.options):  # spread the batches of a big file over the workers
        batches = batches | "Spread" >> beam.Reshuffle()
    pre = batches | "Rules" >> beam.ParDo(_PreDedup(plan)).with_outputs("read", main="items")
    items = pre.items
    if plan.dedup is not None:  # every item in, the same items out: dedup judges the alive ones only
        items, dedup_summary = dedup_stage(plan, items)
    else:
        dedup_summary = pipeline | "NoDedupSummary" >> beam.Create([])
    items = items | "Score" >> beam.ParDo(_Score(plan))
    if core.needs_fit(plan.keep):  # top_fraction, alpha auto: fitted on every score of the component first
        fits = (
            items
            | "ScorePairs" >> beam.FlatMap(lambda it, q: [(it.component, (it.doc.id, it.quality_score))]
                                           if it.alive and it.component in q else [], set(plan.quality_components))
            | "ByComponent" >> beam.GroupByKey()
            | "FitKeep" >> beam.Map(lambda kv, rule, ref: (kv[0], core.fit_keep(list(kv[1]), rule, ref)),
                                    plan.keep, plan.reference_scores)
        )
        items = items | "KeepFitted" >> beam.Map(_keep_fitted, set(plan.quality_components), beam.pvalue.AsDict(fits))
        keep_rules = fits | "KeepSummaries" >> beam.Map(lambda kv, rule: (kv[0], core.keep_summary(rule, kv[1])),
                                                        plan.keep)
    else:
        keep_rules = pipeline | "KeepRules" >> beam.Create(
            [(c, core.keep_summary(plan.keep)) for c in plan.quality_components] if plan.keep else [])
    routed = items | "Route" >> beam.ParDo(_Route(plan)).with_outputs(
        "dropped", "samples", "dead", "outcomes", main="documents")

    written = [
        routed.documents | "DocumentsGroup" >> beam.GroupByKey()
        | "DocumentsWrite" >> beam.ParDo(_WriteShard(plan, "documents")),
        routed.dropped | "DroppedIndexGroup" >> beam.GroupByKey()
        | "DroppedIndexWrite" >> beam.ParDo(_WriteShard(plan, "dropped")),
        routed.samples
        | "Sample" >> beam.combiners.Top.SmallestPerKey(plan.samples_per_reason)
        | "SamplesOne" >> beam.Map(lambda kv: (None, kv[1]))
        | "SamplesGroup" >> beam.GroupByKey()
        | "WriteSamples" >> beam.ParDo(_WriteSamples(plan)),
        routed.dead | "DeadLetterGroup" >> beam.GroupByKey() | "WriteDeadLetter" >> beam.ParDo(_WriteDeadLetter(plan)),
    ]
    (
        pipeline
        | "Finish" >> beam.Create([None])
        | "WriteEmpty" >> beam.ParDo(_WriteEmpty(plan), *[beam.pvalue.AsList(w) for w in written])
    )

    read_stats = (pre.read | "ReadStats" >> beam.Map(lambda r: ("read", r))
                  | "ReadTotals" >> beam.CombineGlobally(_StatsFn()))
    outcome_stats = routed.outcomes | "OutcomeTotals" >> beam.CombineGlobally(_StatsFn())
    (
        pipeline
        | "StatsOnce" >> beam.Create([None])
        | "WriteStats" >> beam.ParDo(_WriteStats(plan), beam.pvalue.AsSingleton(read_stats),
                                     beam.pvalue.AsSingleton(outcome_stats),
                                     beam.pvalue.AsSingleton(dedup_summary, default_value=None),
                                     beam.pvalue.AsDict(keep_rules))
    )


def _keep_fitted(item: core.Curated, quality: set[str], fits: dict[str, core.FittedKeep]) -> core.Curated:
    if item.alive and item.component in quality:
        fit = fits[item.component]
        return core.apply_keep([item], fit.rule, fit.cutoff)[0]
    return item


# ------------------------------------------------------------------------------------------------ DoFns
class _PreDedup(beam.DoFn):
    def __init__(self, plan: CuratePlan) -> None:
        self.rules = plan.rules
        self.holdout = (plan.seed, plan.eval_holdout_fraction)

    def process(self, batch: list[core.RawRecord]) -> Iterable[Any]:
        counts: dict[tuple[str, str], int] = {}
        progress.count(PROGRESS_COUNTER, len(batch))
        for raw in batch:
            counts[(raw.component, raw.source)] = counts.get((raw.component, raw.source), 0) + 1
        for (component, source), n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput("read", (component, source, n))
        yield from core.pre_dedup(batch, self.rules, self.holdout)


class _Score(BufferedDoFn):
    """Scores the alive documents of quality-filtered components in batches of `batch_size` (what the classifier
    is fast at) and applies the keep rule; passes every other item through. A score and a keep decision depend on
    the document alone, so how items fall into batches changes nothing."""

    def __init__(self, plan: CuratePlan) -> None:
        self.classifier_dir = plan.classifier_dir
        self.keep = plan.keep
        self.batch_size = plan.batch_size
        self.quality = set(plan.quality_components)
        self.clf: Any = None

    def _reset(self) -> None:
        self.pending: list[core.Curated] = []

    def process(self, item: core.Curated) -> Iterable[core.Curated]:
        if not (item.alive and item.component in self.quality):
            yield item
            return
        self.pending.append(item)
        if len(self.pending) >= self.batch_size:
            yield from self._flush()

    def _flush(self) -> Iterable[core.Curated]:
        batch, self.pending = self.pending, []
        if not batch:
            return
        if self.clf is None:  # loaded once per worker, on first use (a mixture without quality filter never does)

            self.clf = load_classifier(self.classifier_dir)
        scored = core.score_batch(batch, self.clf)
        yield from scored if core.needs_fit(self.keep) else core.apply_keep(scored, self.keep)


class _Route(beam.DoFn):
    """Each finished item to its writer: kept -> documents shard, dropped -> dropped shard + sample candidates,
    errored -> dead letter; its outcome into the stats (counted here, one record per bundle leaves)."""

    def __init__(self, plan: CuratePlan) -> None:
        self.num_shards, self.seed = plan.num_shards, plan.seed

    def start_bundle(self) -> None:
        self.stats: dict[str, Any] = {}

    def process(self, it: core.Curated) -> Iterable[Any]:
        curate_stats.add_outcome(self.stats, curate_stats.stat_of(it))
        outcome = it.outcome
        if outcome == "kept":
            yield (it.component, core.shard_of(it.doc.id, self.num_shards)), it
        elif outcome == "dropped":
            yield beam.pvalue.TaggedOutput("dropped", ((it.component, core.shard_of(it.doc.id, self.num_shards)), it))
            yield beam.pvalue.TaggedOutput("samples", ((it.component, it.drop_reason), (
                core.sample_key(it.doc.id, self.seed), it.doc.id, it.locator, core.sample_record(it))))
        else:
            yield beam.pvalue.TaggedOutput("dead", (None, core.dead_letter_record(it)))

    def finish_bundle(self) -> Iterable[Any]:
        from apache_beam.transforms.window import GlobalWindows

        if self.stats:
            yield beam.pvalue.TaggedOutput("outcomes", GlobalWindows.windowed_value(("stats", self.stats)))
        self.stats = {}


class _WriteShard(beam.DoFn):
    def __init__(self, plan: CuratePlan, kind: str) -> None:
        self.out_dir, self.num_shards, self.provenance, self.kind = plan.out_dir, plan.num_shards, plan.provenance, kind

    def process(self, element: tuple) -> Iterable[Any]:
        (component, shard), values = element
        items = sorted(values, key=core.sort_key)
        table = core.curated_table(items) if self.kind == "documents" else core.dropped_table(items)
        path = f"{self.out_dir}/{self.kind}/{component}/{schema.shard_name(self.num_shards, shard)}"
        core.write_table_atomic(path, table, self.provenance)
        yield component, shard


class _WriteSamples(beam.DoFn):
    def __init__(self, plan: CuratePlan) -> None:
        self.out_dir = plan.out_dir

    def process(self, element: tuple) -> Iterable[Any]:
        rows = [s for group in element[1] for s in group]
        rows.sort(key=lambda s: (component_order(s[3]["component"]), curate_stats.reason_order(s[3]["drop_reason"]),
                                 s[0], s[1], s[2]))
        fileio.write_jsonl_gz(f"{self.out_dir}/{SAMPLES_FILE}", [s[3] for s in rows])
        yield SAMPLES_FILE


class _WriteDeadLetter(beam.DoFn):
    def __init__(self, plan: CuratePlan) -> None:
        self.out_dir = plan.out_dir

    def process(self, element: tuple) -> Iterable[Any]:
        rows = sorted(element[1], key=lambda r: (r["source"], r["locator"]))
        fileio.write_jsonl_gz(f"{self.out_dir}/{DEAD_LETTER_FILE}", rows)
        yield DEAD_LETTER_FILE


class _WriteEmpty(beam.DoFn):
    """After every writer: the files no document reached (empty shards, no samples, no dead letters), written as
    the writers would write them with nothing in, so a job's output has the same files whatever it read."""

    def __init__(self, plan: CuratePlan) -> None:
        self.plan = plan

    def process(self, _: None, documents: list, dropped: list, samples: list, dead: list) -> Iterable[None]:
        plan = self.plan
        for kind, done in (("documents", set(documents)), ("dropped", set(dropped))):
            writer = _WriteShard(plan, kind)
            for component in plan.components:
                for shard in range(plan.num_shards):
                    if (component, shard) not in done:
                        list(writer.process(((component, shard), [])))
        if not samples:
            list(_WriteSamples(plan).process((None, [])))
        if not dead:
            list(_WriteDeadLetter(plan).process((None, [])))
        return ()


class _StatsFn(beam.CombineFn):
    """Counts and histograms are integers, so the combined result does not depend on the order of merging."""

    def create_accumulator(self) -> dict:
        return {}

    def add_input(self, acc: dict, element: tuple) -> dict:
        kind, value = element
        if kind == "read":
            curate_stats.add_read(acc, *value)
        else:  # "stats": a worker's counts of a bundle's outcomes
            curate_stats.merge_stats(acc, value)
        return acc

    def merge_accumulators(self, accs: Iterable[dict]) -> dict:
        out: dict = {}
        for acc in accs:
            curate_stats.merge_stats(out, acc)
        return out

    def extract_output(self, acc: dict) -> dict:
        return acc


class _WriteStats(beam.DoFn):
    def __init__(self, plan: CuratePlan) -> None:
        self.out_dir, self.components, self.missing = plan.out_dir, plan.components, plan.missing_sources

    def process(self, _: None, reads: dict, outcomes: dict, dedup_summary: dict | None,
                keep_rules: dict) -> Iterable[None]:
        stats = curate_stats.merge_stats(curate_stats.merge_stats({}, reads), outcomes)
        final = curate_stats.finish_stats(stats, self.components)  # raises ConservationError: the job fails
        final["missing_sources"] = list(self.missing)
        final["keep_rules"] = dict(sorted(keep_rules.items()))  # per quality-filtered component: as applied
        if dedup_summary is not None:
            final["dedup"] = dedup_summary
        fileio.write_json(f"{self.out_dir}/{STATS_FILE}", final, sort_keys=True, indent=2)
        return ()


# ------------------------------------------------------------------------------------------------ running
def run_job(plan: CuratePlan, beam_args: Sequence[str] = ()) -> dict[str, Any]:
    """Run the pipeline to completion; return stats.json's content, once conservation is checked again on it and
    the written files on it (pipelines.beam.checks): otherwise the job fails and its stage publishes nothing."""
    options = pipeline_options(beam_args)
    pipeline = beam.Pipeline(options=options)
    build(pipeline, plan)
    job_checks.run_to_completion(pipeline, "curate")
    # The runner may report success having skipped a branch: what was written must match what was counted.
    stats_path = f"{plan.out_dir}/{STATS_FILE}"
    job_checks.fail_if("curate", [] if fileio.exists(stats_path) else [STATS_FILE], [])
    with fileio.open_read(stats_path) as f:
        stats = json.loads(f.read())
    curate_stats.finish_stats(stats["components"], plan.components)  # the job checked it; check what was written
    check_curated(plan, stats, {"samples": SAMPLES_FILE, "dead": DEAD_LETTER_FILE})
    return stats


def curate(spec: MixtureSpec, run_dir: Path, out_dir: Path, beam_args: Sequence[str] = (),
           provenance: dict[str, Any] | None = None, classifier_dir: Path | None = None,
           sources_dir: Path | None = None, num_shards: int = DEFAULT_SHARDS, batch_size: int = DEFAULT_BATCH,
           samples_per_reason: int = DEFAULT_SAMPLES, task_dir: Path | None = None) -> dict[str, Any]:
    """Curate RUN/sources into out_dir (which should be a fresh folder: the stage runner's temporary one).
    Decontamination compares with `task_dir` (default RUN/tasks, the built-in tasks) and the spec's task files."""
    sources_dir = sources_dir or run_dir / "sources"
    classifier_dir = classifier_dir or classifier_dir_for(spec, run_dir)
    task_dir = task_dir or run_dir / "tasks"
    plan = make_plan(spec, sources_dir, classifier_dir, out_dir, provenance, num_shards, batch_size,
                     samples_per_reason, task_dir)
    if plan.dedup is not None:
        log.info("%s", describe(spec.dedup))
    return run_job(plan, beam_args)


