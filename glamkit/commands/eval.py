"""`glamkit eval`, `glamkit lm-eval` and `glamkit study`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from data_specs import SPEC_ROOT
from data_specs.errors import UnknownNameError
from eval.harness import table, task_manager, write_results
from eval.run import DEFAULT_TASKS, RUN_INFO, evaluate_run
from glamkit.args import add_dry_run, require_run
from glamkit.study import run_study

GLAM_TASKS = SPEC_ROOT / "glam_tasks"  # the glam_nlg / glam_nlu groups of lm-eval task names


LM_EVAL_HELP = f"""glamkit lm-eval: lm-evaluation-harness's own CLI; `--model glamkit` is the default.
model_args: run=RUN (or train=DIR,tokenizer=DIR), data=D,expert=E for a D x E device mesh; --batch_size N.
GLaM's task groups glam_nlg and glam_nlu are in {GLAM_TASKS} (pass it as --include_path; their datasets
download from the Hugging Face hub).

Examples:
  glamkit lm-eval --model_args run=runs/demo --tasks wiki-cloze --include_path runs/demo/tasks
  glamkit lm-eval --model_args run=RUN --tasks glam_nlg,glam_nlu --include_path {GLAM_TASKS}
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run with lm-evaluation-harness on its built-in tasks; write results.json",
        description="Score a run's trained model (RUN/train, RUN/tokenizer) with lm-evaluation-harness's "
        "simple_evaluate and the glamkit backend on the lm-eval task YAMLs in RUN/tasks/ (built by the tasks "
        "stage from documents held out before curation). Writes lm-eval's results JSON; its run-dependent fields "
        "(date, git hash, environment) go to RUN/logs/eval/lm-eval-run.json.",
        epilog="Example:\n  glamkit eval --run runs/demo\n"
        "  glamkit eval --run runs/demo --tasks lambada-books,heldout-bpb-components --limit 50",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", dest="run_dir", type=Path, default=Path("runs/demo"), help="run folder")
    p.add_argument("--tasks", default=None, help="comma-separated lm-eval task or tag names in RUN/tasks "
                   "(default: the recipe's built-in tasks)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples of each task")
    p.add_argument("--num_fewshot", type=int, default=None, help="demonstrations per prompt (default: the YAML's)")
    p.add_argument("--train", type=Path, default=None, help="trained model folder (default: RUN/train)")
    p.add_argument("--out", type=Path, default=None, help="results file (default: RUN/eval/results.json)")
    add_dry_run(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("lm-eval", help="lm-evaluation-harness's own CLI with the glamkit model backend registered",
                       description=LM_EVAL_HELP, add_help=False)
    p.set_defaults(func=cmd_lm_eval, passthrough=True)  # every argument after `lm-eval` goes to lm-eval

    p = sub.add_parser(
        "study",
        help="filtered vs unfiltered web: train N seeds per arm, evaluate, write study.json and study.html",
        description="GLaM's data-quality study. Two arms differ only in the web component's quality filter "
        "(same budget, weights, tokenizer, model preset, steps and tasks); each trains every seed of the study "
        "spec and is evaluated on its tasks with lm-evaluation-harness. Drives the recipe's stages through the "
        "stage runner, so an interrupted study resumes where it stopped.",
        epilog="Example:\n  glamkit study --spec demo --run runs/study-demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--spec", default="demo", help="study spec name or path (default: demo)")
    p.add_argument("--run", dest="run_dir", type=Path, default=Path("runs/study-demo"), help="study folder")
    p.set_defaults(func=cmd_study)


def cmd_eval(args: argparse.Namespace) -> int:
    tasks = args.tasks.split(",") if args.tasks else list(DEFAULT_TASKS)
    require_run(args.run_dir, "tasks", "tokenizer", *([] if args.train else ["train"]))
    if args.dry_run:
        return _dry_run(args, tasks)
    results = evaluate_run(args.run_dir, tasks, train_dir=args.train, limit=args.limit, num_fewshot=args.num_fewshot,
                           skip_missing=args.tasks is None)
    out = args.out or args.run_dir / "eval" / "results.json"
    write_results(results, out, args.run_dir / RUN_INFO)
    print(table(results))
    print(f"wrote {out}")
    return 0


def _dry_run(args: argparse.Namespace, tasks: list[str]) -> int:
    """--dry-run: the task names checked against RUN/tasks (before any model is loaded), the plan printed."""
    known = task_manager(args.run_dir / "tasks").all_tasks
    if args.tasks:
        for name in tasks:
            if name not in known:
                raise UnknownNameError("task", name, sorted(known))
    else:
        tasks = [t for t in tasks if t in known]
    limit = f", first {args.limit} examples each" if args.limit else ""
    print(f"dry run: eval {args.train or args.run_dir / 'train'} on {', '.join(tasks)}{limit} -> "
          f"{args.out or args.run_dir / 'eval' / 'results.json'} (nothing written)")
    return 0


def cmd_lm_eval(args: argparse.Namespace) -> int:
    """Register the backend, default `--model glamkit`, and hand the arguments to lm-eval's own CLI."""
    from lm_eval.__main__ import cli_evaluate

    import eval.backend  # noqa: F401  (registers the `glamkit` model)

    os.environ.setdefault("DISABLE_MULTIPROC", "1")  # lm-eval's bootstrap pool would fork a process running JAX
    argv = list(args.extra)
    if not argv or argv[0] in ("-h", "--help"):
        print(LM_EVAL_HELP)
        argv = ["--help"]
    elif argv[0] not in ("ls", "validate") and not any(a == "--model" or a.startswith("--model=") for a in argv):
        head, rest = (["run"], argv[1:]) if argv[0] == "run" else ([], argv)
        argv = [*head, "--model", "glamkit", *rest]
    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    except SystemExit as stop:
        return int(stop.code or 0)
    finally:
        sys.argv = saved
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    summary = run_study(args.spec, args.run_dir)
    print(summary["verdict"])
    print(f"wrote {args.run_dir / 'study.json'} and {args.run_dir / 'study.html'}")
    return 0
