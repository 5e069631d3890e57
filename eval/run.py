"""Run evaluation tasks on a trained run and write `results.json` (per task: metric, standard error, n)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_specs import specs
from data_specs.stages import StageContext
from eval.lm import SentencePieceTokenizer, TokenLM
from eval.tasks import evaluate_task, load_splits

DEFAULT_TASKS = ("heldout-bpb", "lambada-books", "next-sentence", "wiki-cloze")


def evaluate_run(run_dir: Path, task_names: Sequence[str], train_dir: Path | None = None,
                 limit: int | None = None, seed: int = 0, batch_size: int = 8, tokenizer_dir: Path | None = None,
                 tasks_dir: Path | None = None) -> dict[str, Any]:
    """Evaluate RUN/train with RUN/tokenizer on tasks (built-ins from RUN/tasks); each folder can be given."""
    from eval.model_loader import load_trained

    forward, params, train_spec = load_trained(train_dir or run_dir / "train")
    tokenizer = SentencePieceTokenizer(str((tokenizer_dir or run_dir / "tokenizer") / "tokenizer.model"))
    tasks_dir = tasks_dir or run_dir / "tasks"
    lm = TokenLM(tokenizer, forward, max_len=train_spec.seq_len, batch_size=batch_size, params=params)
    results: dict[str, Any] = {}
    for name in task_names:
        task = specs.load("tasks", name)
        splits = load_splits(task, tasks_dir)
        n = len(splits[task.test_split][:limit] if limit else splits[task.test_split])
        print(f"eval: {name} ({n} examples, {task.output_type}, {task.num_fewshot}-shot)", file=sys.stderr, flush=True)
        results[name] = evaluate_task(task, splits, lm, seed=seed, limit=limit)
    return results


def _num(x: float) -> str:
    return f"{x:>10.4f}" if abs(x) < 1e4 else f"{x:>10.3g}"


def format_results(results: dict[str, Any]) -> str:
    lines = [f"{'task':<16}{'metric':<16}{'value':>10}{'stderr':>10}{'n':>7}"]
    for task, res in results.items():
        for metric, value in res.items():
            if isinstance(value, dict) and "value" in value:
                lines.append(f"{task:<16}{metric:<16}{_num(value['value'])}{_num(value['stderr'])}{res['n']:>7}")
        for component, sub in res.get("per_component", {}).items():
            bpb = sub.get("bits_per_byte")
            if bpb:
                lines.append(f"{'  ' + component:<16}{'bits_per_byte':<16}{_num(bpb['value'])}{_num(bpb['stderr'])}"
                             f"{sub['n']:>7}")
    return "\n".join(lines)


def eval_stage(ctx: StageContext, task_names: Sequence[str] = DEFAULT_TASKS, limit: int | None = None,
               tokenizer_dir: Path | None = None, tasks_dir: Path | None = None) -> dict[str, Any]:
    """The `eval` stage: RUN/eval/results.json. Folders default to the run's own stages."""
    results = evaluate_run(ctx.run_dir, task_names, train_dir=ctx.upstream["train"], limit=limit,
                           tokenizer_dir=tokenizer_dir or ctx.upstream.get("tokenizer"),
                           tasks_dir=tasks_dir or ctx.upstream.get("tasks"))
    (ctx.out / "results.json").write_text(json.dumps(results, sort_keys=True, indent=2) + "\n")
    print(format_results(results))
    return {t: {k: v["value"] for k, v in r.items() if isinstance(v, dict) and "value" in v}
            for t, r in results.items()}
