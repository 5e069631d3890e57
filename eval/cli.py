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
    p.add_argument("--out", type=Path, default=None, help="results file (default: RUN/eval/results.json)")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from eval.run import DEFAULT_TASKS, evaluate_run, format_results

    tasks = args.tasks.split(",") if args.tasks else list(DEFAULT_TASKS)
    results = evaluate_run(args.run_dir, tasks, limit=args.limit)
    out = args.out or args.run_dir / "eval" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, sort_keys=True, indent=2) + "\n")
    os.replace(tmp, out)
    print(format_results(results))
    print(f"wrote {out}")
    return 0
