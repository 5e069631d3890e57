"""The `tasks` stage: the built-in tasks from held-out source documents, as lm-evaluation-harness YAMLs and data."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from data_specs import specs
from data_specs.records import Document, read_documents
from data_specs.specs import MixtureSpec
from data_specs.stages import Stage, StageArgs, StageContext, make
from eval.builtin import Tasks, build_tasks, drop_common_phrase_examples, write_tasks
from eval.task_files import HELDOUT, write_component_views, write_task_yamls
from filters.holdout import is_eval_holdout
from filters.normalize import normalize_document


def source_documents(sources_dir: Path, seed: int, fraction: float, heldout: bool,
                     names: frozenset[str] | None = None) -> Iterator[Document]:
    """The held-out (or, heldout=False, the other) source documents, normalised as the curate job normalises them;
    of the sources in `names` only (the mixture's: the sources stage also reads its classifier's)."""
    for path in sorted(sources_dir.glob("*.jsonl.gz")):
        if names is not None and path.name.removesuffix(".jsonl.gz") not in names:
            continue
        for doc in read_documents(path):
            if is_eval_holdout(doc.id, seed, fraction) == heldout:
                yield dataclasses.replace(doc, text=normalize_document(doc.text))


def make_tasks(sources_dir: Path, mixture: MixtureSpec, log: logging.Logger | None = None
               ) -> tuple[Tasks, dict[str, int]]:
    """The built-in tasks from the documents the mixture holds out, without the examples the curate job's
    decontamination cannot clean (`drop_common_phrase_examples`); and how many were left out per task."""
    names = frozenset(n for c in mixture.components.values() for n in c.sources)
    args = (sources_dir, mixture.seed, mixture.eval_holdout_fraction)
    tasks = build_tasks(source_documents(*args, heldout=True, names=names), mixture.seed)
    dedup = mixture.dedup
    if not (dedup.decontaminate and dedup.builtin_tasks and dedup.decontaminate_common_documents is not None):
        return tasks, {}
    pool = (doc.text for doc in source_documents(*args, heldout=False, names=names))
    tasks, dropped = drop_common_phrase_examples(tasks, pool, dedup.decontaminate_ngram,
                                                 dedup.decontaminate_common_documents)
    if log is not None:
        log.info("examples left out for holding a common %d-gram: %s", dedup.decontaminate_ngram, dropped)
    return tasks, dropped


def tasks_stage(ctx: StageContext, mixture_spec: str | Path) -> dict[str, Any]:
    """RUN/tasks/<task>/{test,train}.jsonl (see `make_tasks`) and their lm-eval YAMLs (eval.task_files), whose
    data_files point at the stage's final folder."""
    mixture = specs.load("mixtures", mixture_spec)
    tasks, dropped = make_tasks(ctx.upstream["sources"], mixture, ctx.log)
    counts = write_tasks(tasks, ctx.out)
    components = write_component_views(ctx.out, tasks[HELDOUT]["test"])
    names = write_task_yamls(ctx.out, (ctx.run_dir / ctx.name).resolve())
    ctx.log.info("built-in tasks: %s; lm-eval tasks: %s", counts, ", ".join(names))
    return {"examples": counts, "heldout_components": components, "lm_eval_tasks": names,
            "holdout_fraction": mixture.eval_holdout_fraction, "left_out_common_ngrams": dropped}


NAME = "tasks"
DESCRIPTION = "build lm-eval tasks from documents held out before curation"
VERSION = "4"  # 4: documents in a seeded random order (--limit N scores a mix of sources)


def make_stage(args: StageArgs) -> Stage:
    """Needs `sources`; the key covers the holdout and the decontamination settings the tasks are built with."""
    mixture = specs.load("mixtures", args.mixture)
    dedup = mixture.dedup
    config = {"seed": mixture.seed, "eval_holdout_fraction": mixture.eval_holdout_fraction,
              "decontaminate": [dedup.decontaminate, dedup.builtin_tasks, dedup.decontaminate_ngram,
                                dedup.decontaminate_common_documents]}
    return make(NAME, partial(tasks_stage, mixture_spec=args.mixture), config, args, needs=("sources",),
                version=VERSION, description=DESCRIPTION)
