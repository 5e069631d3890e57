"""Evaluate a trained run with lm-evaluation-harness and the glamkit backend; the recipe's `eval` stage.

RUN/eval/results.json is lm-eval's results JSON (per task: metrics and standard errors under lm-eval's names, the
task configs, n-shot, versions, sample counts) without its run-dependent fields, which go to
RUN/logs/eval/lm-eval-run.json: the stage's output is byte-identical across runs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from data_specs.stages import Stage, StageArgs, StageContext, make
from eval.harness import evaluate, load_tasks, metric_values, table, task_manager, write_results
from eval.task_files import limited_samples

# The built-in tasks the recipe evaluates (names and tags of the YAMLs the tasks stage writes).
DEFAULT_TASKS = ("heldout-bpb", "heldout-bpb-components", "lambada-books", "next-sentence", "wiki-cloze")
RUN_INFO = Path("logs") / "eval" / "lm-eval-run.json"


def evaluate_run(run_dir: Path, task_names: Sequence[str], train_dir: Path | None = None,
                 tokenizer_dir: Path | None = None, tasks_dir: Path | None = None, limit: int | None = None,
                 num_fewshot: int | None = None, batch_size: int = 8, skip_missing: bool = False,
                 log: logging.Logger | None = None) -> dict[str, Any]:
    """lm-eval's results for RUN/train with RUN/tokenizer on tasks from RUN/tasks (each folder can be given);
    `limit`: the first N examples of each task (eval.task_files.limited_samples). `skip_missing` leaves out
    requested tasks that the folder does not have (a mixture without books has no lambada-books)."""
    from eval.backend import GlamkitLM

    manager = task_manager(tasks_dir or run_dir / "tasks")
    if skip_missing:
        missing = [n for n in task_names if n not in manager.all_tasks]
        if missing and log is not None:
            log.info("eval: no examples for %s in %s: left out", ", ".join(missing), tasks_dir or run_dir / "tasks")
        task_names = [n for n in task_names if n in manager.all_tasks]
    tasks = load_tasks(manager, task_names)
    lm = GlamkitLM(train=str(train_dir or run_dir / "train"), tokenizer=str(tokenizer_dir or run_dir / "tokenizer"),
                   batch_size=batch_size)
    samples = limited_samples(manager, tasks, limit)
    if samples is not None:  # a component with no document among heldout-bpb's first `limit`
        tasks = {name: task for name, task in tasks.items() if samples[name]}
        samples = {name: samples[name] for name in tasks}
    for name, task in tasks.items():
        n = len(samples[name]) if samples is not None else len(task.eval_docs)
        print(f"eval: {name} ({n} examples, {task.OUTPUT_TYPE})", file=sys.stderr, flush=True)
    return evaluate(lm, manager, tasks, samples, num_fewshot)


def eval_stage(ctx: StageContext, task_names: Sequence[str] = DEFAULT_TASKS, limit: int | None = None,
               tokenizer_dir: Path | None = None, tasks_dir: Path | None = None,
               skip_missing: bool = False) -> dict[str, Any]:
    """The `eval` stage: RUN/eval/results.json (lm-eval's), run-dependent fields in RUN/logs/eval/. Folders default
    to the run's own stages."""
    results = evaluate_run(ctx.run_dir, task_names, train_dir=ctx.upstream.get("train"),
                           tokenizer_dir=tokenizer_dir or ctx.upstream.get("tokenizer"),
                           tasks_dir=tasks_dir or ctx.upstream.get("tasks"), limit=limit,
                           skip_missing=skip_missing, log=ctx.log)
    write_results(results, ctx.out / "results.json", ctx.run_dir / RUN_INFO)
    print(table(results))
    return metric_values(results)


NAME = "eval"
DESCRIPTION = "evaluate the trained model on held-out tasks with lm-evaluation-harness"
VERSION = "2"


def make_stage(args: StageArgs) -> Stage:
    """Needs `train`, `tokenizer` and `tasks`; the built-in tasks, `args.eval_limit` examples each."""
    run = partial(eval_stage, task_names=DEFAULT_TASKS, limit=args.eval_limit, skip_missing=True)
    return make(NAME, run, {"tasks": list(DEFAULT_TASKS), "limit": args.eval_limit}, args,
                needs=("train", "tokenizer", "tasks"), version=VERSION, description=DESCRIPTION)
