"""Stage functions for the stage runner: build the built-in tasks from held-out source documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_specs import specs
from data_specs.records import read_documents
from data_specs.stages import StageContext
from eval.builtin import build_tasks, write_tasks
from filters.holdout import is_eval_holdout


def heldout_documents(sources_dir: Path, seed: int, fraction: float):
    for path in sorted(sources_dir.glob("*.jsonl.gz")):
        for doc in read_documents(path):
            if is_eval_holdout(doc.id, seed, fraction):
                yield doc


def tasks_stage(ctx: StageContext, mixture_spec: str | Path) -> dict[str, Any]:
    """RUN/tasks/<task>/{test,train}.jsonl from the documents the mixture holds out for evaluation."""
    mixture = specs.load("mixtures", mixture_spec)
    docs = heldout_documents(ctx.upstream["sources"], mixture.seed, mixture.eval_holdout_fraction)
    counts = write_tasks(build_tasks(docs, mixture.seed), ctx.out)
    ctx.log.info("built-in tasks: %s", counts)
    return {"examples": counts, "holdout_fraction": mixture.eval_holdout_fraction}
