"""Core subcommands: run the recipe, show stage status, check and show specs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from data_specs import specs
from data_specs.errors import GlamkitError
from data_specs.loader import load_spec, parse_set_args, to_plain
from data_specs.specs import spec_path
from glamkit.args import add_dry_run, add_set_option, print_plan, require_run
from glamkit.recipe import STAGES, layout, stage_names
from glamkit.summary import summarize


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "run",
        help="run the recipe's stages through the stage runner (skips what is done)",
        description="Run every implemented stage of the recipe for a mixture spec, in order. A stage whose inputs "
        "and config are unchanged since its last successful run is skipped; a changed one reruns with everything "
        "after it.",
        epilog="Examples:\n  glamkit run --spec demo --run runs/demo\n"
        "  glamkit run --spec demo --run runs/demo --only curated\n"
        "  glamkit run --spec demo --run runs/demo --dry-run   # the stage plan; nothing written",
        formatter_class=fmt,
    )
    p.add_argument("--spec", default="demo", help="mixture spec name or path (default: demo)")
    p.add_argument("--run", dest="run_dir", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--train", dest="train_spec", default="tiny", help="train spec name or path (default: tiny)")
    p.add_argument("--only", action="append", metavar="STAGE", choices=stage_names(),
                   help=f"run only this stage and what it needs (one of {', '.join(stage_names())})")
    p.add_argument("--force", action="append", default=[], metavar="STAGE", choices=stage_names(),
                   help="rerun this stage even if done")
    add_dry_run(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "stages",
        help="list the recipe's stages and their state in a run folder",
        description="List the recipe's stages and, for a run folder, whether each is done, stale or missing.",
        epilog="Example:\n  glamkit stages --spec demo --run runs/demo --json",
        formatter_class=fmt,
    )
    p.add_argument("--spec", default="demo", help="mixture spec name or path (default: demo)")
    p.add_argument("--run", dest="run_dir", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser(
        "spec",
        help="check or show a spec (sources, mixtures, classifier, train, tasks, studies)",
        description="Load a spec with full checking and print it resolved (defaults filled in), or list specs.",
        epilog="Examples:\n  glamkit spec list\n  glamkit spec show mixtures demo\n"
        "  glamkit spec check train data_specs/train/tiny.yaml --set steps=10 optimizer.learning_rate=0.005",
        formatter_class=fmt,
    )
    p.add_argument("action", choices=["list", "check", "show"])
    p.add_argument("kind", nargs="?", help="spec kind")
    p.add_argument("name", nargs="?", help="spec name or path")
    add_set_option(p, "the spec's")
    p.set_defaults(func=cmd_spec)


def cmd_run(args: argparse.Namespace) -> int:
    spec = spec_path("mixtures", args.spec)
    run = layout(args.run_dir, spec, args.train_spec)
    if args.dry_run:
        return print_plan(run, args.only, args.force)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    names = {s.name for s in run.stages}
    print(f"glamkit run: {run.run_dir} (mixture spec {spec})")
    for module in STAGES:
        state = "available" if module.NAME in names else "not in this recipe"
        print(f"  {module.NAME:<11} {state:<18} {module.DESCRIPTION}")
    for result in run.run(only=args.only, force=args.force):
        timing = f" in {result.seconds:.1f} s" if result.state == "ran" else ""
        print(f"  {result.name:<11} {result.state}{timing} -> {result.path}")

    print(summarize(run.run_dir))
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    require_run(args.run_dir)
    run = layout(args.run_dir, spec_path("mixtures", args.spec))
    state = dict(run.status())
    rows = [{"stage": m.NAME, "what": m.DESCRIPTION, "state": state.get(m.NAME, "not in this recipe")} for m in STAGES]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['stage']:<11} {row['state']:<18} {row['what']}")
    return 0


def cmd_spec(args: argparse.Namespace) -> int:

    if args.action == "list":
        kinds = [args.kind] if args.kind else list(specs.SPEC_KINDS)
        for kind in kinds:
            if kind not in specs.SPEC_KINDS:
                raise GlamkitError(f"unknown spec kind {kind!r} (one of {', '.join(specs.SPEC_KINDS)})")
            print(f"{kind}: {', '.join(specs.spec_names(kind))}")
        return 0
    if not args.kind or not args.name:
        raise GlamkitError(f"'glamkit spec {args.action}' needs KIND and NAME (e.g. glamkit spec show mixtures demo)")
    path = specs.spec_path(args.kind, args.name)
    spec = load_spec(specs.SPEC_KINDS[args.kind], path, parse_set_args(args.set))
    if args.action == "check":
        print(f"{Path(path)}: ok ({type(spec).__name__})")
    else:
        print(yaml.safe_dump(to_plain(spec), sort_keys=False), end="")
    return 0
