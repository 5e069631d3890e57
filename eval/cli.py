"""`glamkit eval`: run evaluation tasks on a trained run."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run on zero/one/few-shot tasks; write results.json",
        description="Score a run's trained model (RUN/train) on tasks in lm-evaluation-harness layout "
        "(data_specs/tasks/*.yaml or your own YAML over local JSONL), with the run's tokenizer. Built-in tasks "
        "read RUN/tasks/, built from documents held out before curation.",
        epilog="Example:\n  glamkit eval --run runs/demo\n"
        "  glamkit eval --run runs/demo --tasks lambada-books,heldout-bpb --limit 50",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", dest="run_dir", type=Path, default=Path("runs/demo"), help="run folder")
    p.add_argument("--tasks", default=None, help="comma-separated task spec names or paths (default: built-ins)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples of each task")
    p.add_argument("--train", type=Path, default=None, help="trained model folder (default: RUN/train)")
    p.add_argument("--out", type=Path, default=None, help="results file (default: RUN/eval/results.json)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "study",
        help="filtered vs unfiltered web: train N seeds per arm, evaluate, write study.json and study.html",
        description="GLaM's data-quality study. Two arms differ only in the web component's quality filter "
        "(same budget, weights, tokenizer, model preset, steps and tasks); each trains every seed of the study "
        "spec and is evaluated on its tasks. Drives the recipe's stages through the stage runner, so an "
        "interrupted study resumes where it stopped.",
        epilog="Example:\n  glamkit study --spec demo --run runs/study-demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--spec", default="demo", help="study spec name or path (default: demo)")
    p.add_argument("--run", dest="run_dir", type=Path, default=Path("runs/study-demo"), help="study folder")
    p.set_defaults(func=cmd_study)


def cmd_eval(args: argparse.Namespace) -> int:
    from eval.run import DEFAULT_TASKS, evaluate_run, format_results

    tasks = args.tasks.split(",") if args.tasks else list(DEFAULT_TASKS)
    results = evaluate_run(args.run_dir, tasks, train_dir=args.train, limit=args.limit)
    out = args.out or args.run_dir / "eval" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, sort_keys=True, indent=2) + "\n")
    os.replace(tmp, out)
    print(format_results(results))
    print(f"wrote {out}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from eval.study import run_study

    summary = run_study(args.spec, args.run_dir)
    print(summary["verdict"])
    print(f"wrote {args.run_dir / 'study.json'} and {args.run_dir / 'study.html'}")
    return 0
