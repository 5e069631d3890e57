"""The curate job's plan: everything it needs resolved up front from the mixture spec and the run folder (the input
splits, rules, keep rule, classifier, dedup config), and the part of the spec its stage key covers. No Beam."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_specs import specs
from data_specs.errors import GlamkitError
from data_specs.loader import to_plain
from data_specs.specs import KeepRuleSpec, MixtureSpec, RulesSpec
from filters.quality import load_reference_scores
from pipelines.curate import core
from pipelines.dedup.config import DedupConfig, config_for
from sources.stage import document_files, source_files

log = logging.getLogger("glamkit.curate")

CURATE_VERSION = "3"  # bump when the job's code changes what it writes (3: keep_rules, alpha auto)
DEFAULT_SHARDS = 8  # per component
DEFAULT_BATCH = 256  # records per read batch and per scoring call
DEFAULT_SAMPLES = 20  # dropped documents sampled per (component, reason)


@dataclass(frozen=True)
class CuratePlan:
    """Everything the pipeline needs, resolved up front (picklable: it travels to the workers)."""

    splits: tuple[core.InputSplit, ...]
    components: tuple[str, ...]  # every component of the mixture (stats and shard files for each)
    rules: dict[str, RulesSpec]
    quality_components: tuple[str, ...]
    keep: KeepRuleSpec | None
    classifier_dir: str | None
    out_dir: str
    num_shards: int = DEFAULT_SHARDS
    batch_size: int = DEFAULT_BATCH
    samples_per_reason: int = DEFAULT_SAMPLES
    seed: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)
    missing_sources: tuple[str, ...] = ()
    eval_holdout_fraction: float = 0.0  # documents held out for eval tasks (dropped first, as `eval_holdout`)
    dedup: DedupConfig | None = None  # None: no dedup stage
    reference_scores: tuple[float, ...] = ()  # alpha auto: the classifier's held-out positives' scores


def curation_config(spec: MixtureSpec, num_shards: int = DEFAULT_SHARDS,
                    samples_per_reason: int = DEFAULT_SAMPLES) -> dict[str, Any]:
    """The part of a mixture spec the curate stage depends on (its key): not tokenizer or mixing settings."""
    return {
        "version": CURATE_VERSION,
        "seed": spec.seed,
        "components": {n: {"sources": list(c.sources), "quality_filter": c.quality_filter}
                       for n, c in sorted(spec.components.items())},
        "rules": {n: to_plain(spec.rules_for(n)) for n in sorted(spec.components)},
        "quality": to_plain(spec.quality),
        "dedup": to_plain(spec.dedup),
        "eval_holdout_fraction": spec.eval_holdout_fraction,
        "num_shards": num_shards,
        "samples_per_reason": samples_per_reason,
    }


def make_plan(spec: MixtureSpec, sources_dir: Path, classifier_dir: Path | None, out_dir: Path | str,
              provenance: dict[str, Any] | None = None, num_shards: int = DEFAULT_SHARDS,
              batch_size: int = DEFAULT_BATCH, samples_per_reason: int = DEFAULT_SAMPLES,
              task_dir: Path | None = None) -> CuratePlan:
    """`task_dir`: the built-in tasks (RUN/tasks) that decontamination compares with, besides the spec's files."""
    files = source_files(sources_dir.parent) if sources_dir.name == "sources" else document_files(sources_dir)
    splits: list[core.InputSplit] = []
    missing = []
    for component, comp in sorted(spec.components.items()):
        for source in comp.sources:
            path = files.get(source)
            if path is None:
                missing.append(source)
                continue
            if str(path).endswith(".parquet"):
                splits.extend(core.parquet_splits(source, component, str(path)))
            else:
                splits.append(core.InputSplit(source, component, str(path)))
    if not splits:
        raise GlamkitError(f"{sources_dir}: none of the mixture's sources has documents here")
    for source in missing:
        log.warning("curate: source %s has no documents in %s (skipped)", source, sources_dir)
    quality = tuple(sorted(n for n, c in spec.components.items() if c.quality_filter))
    reference: tuple[float, ...] = ()
    if quality:
        if classifier_dir is None or not (Path(classifier_dir) / "classifier.json").exists():
            raise GlamkitError(f"curate: components {', '.join(quality)} use the quality classifier, but "
                               f"{classifier_dir} holds no trained classifier (run `glamkit classifier train`)")
        keep = spec.quality.keep
        if keep.auto and keep.target_keep is None:
            reference = tuple(load_reference_scores(Path(classifier_dir)))
    return CuratePlan(
        splits=tuple(splits),
        components=tuple(sorted(spec.components)),
        rules={n: spec.rules_for(n) for n in spec.components},
        quality_components=quality,
        keep=spec.quality.keep if spec.quality else None,
        classifier_dir=str(classifier_dir) if quality else None,
        out_dir=str(out_dir),
        num_shards=num_shards,
        batch_size=batch_size,
        samples_per_reason=samples_per_reason,
        seed=spec.seed,
        provenance=dict(provenance or {}),
        missing_sources=tuple(missing),
        eval_holdout_fraction=spec.eval_holdout_fraction,
        dedup=_dedup_config(spec, task_dir),
        reference_scores=reference,
    )


def _dedup_config(spec: MixtureSpec, task_dir: Path | None) -> DedupConfig | None:
    d = spec.dedup
    if not (d.exact or d.near or d.decontaminate):
        return None
    if d.decontaminate and d.builtin_tasks and spec.eval_holdout_fraction > 0 and \
            not (task_dir is not None and Path(task_dir).is_dir()):
        log.warning("curate: no built-in tasks at %s: decontamination checks the spec's task files only", task_dir)
    for t in d.tasks:
        if not Path(t.path).is_file():
            raise GlamkitError(f"curate: dedup.tasks: no task file {t.path}")
    return config_for(d, task_dir)


def classifier_dir_for(spec: MixtureSpec, run_dir: Path, upstream: Path | None = None) -> Path | None:
    """The trained classifier: the mixture's `quality.classifier` if it names a model folder, else the run's."""
    if spec.quality is None:
        return None
    named = Path(spec.quality.classifier)
    if (named / "classifier.json").exists():
        return named
    return upstream or run_dir / "classifier"


def standalone_inputs(spec_path: str | Path, run_dir: Path) -> tuple[Path, ...]:
    """What the stage fingerprints when it runs without its upstream stages in the layout."""
    spec = specs.load("mixtures", spec_path)
    inputs = [run_dir / "sources"]
    if (run_dir / "tasks").is_dir():
        inputs.append(run_dir / "tasks")
    inputs += [Path(t.path) for t in spec.dedup.tasks]
    clf = classifier_dir_for(spec, run_dir)
    if clf is not None:
        inputs.append(clf)
    return tuple(inputs)
