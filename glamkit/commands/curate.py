"""`glamkit curate`: run the Beam curation job on a run's source documents. Any Beam pipeline option passes through."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_specs.specs import spec_path
from data_specs.stages import RunLayout, StageArgs
from glamkit.args import add_dry_run, print_plan, require_run
from glamkit.recipe import layout
from pipelines.beam.options import beam_args, pass_unknown_to_beam, pipeline_options
from pipelines.curate.schema import STATS_FILE
from pipelines.curate.stage import STAGE_NAME, make_stage, print_table

EPILOG = """Examples:
  glamkit curate --spec data_specs/mixtures/demo.yaml --run runs/demo
  glamkit curate --spec demo --run runs/demo --direct_num_workers=2 --direct_running_mode=multi_processing
  glamkit curate --spec demo --run runs/demo --runner=PortableRunner --job_endpoint=localhost:8099 \\
      --environment_type=EXTERNAL --environment_config=localhost:50000

Every option not listed above is a Beam pipeline option (--runner, --project, --region, --temp_location,
--flink_master, --spark_master_url, --environment_type, ...). The default runner is Beam's in-process FnApiRunner
(no network). Outputs: RUN/curated/ (documents/, dropped/, samples/, dead_letter.jsonl.gz, stats.json)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curate",
        help="curate source documents with Beam: normalise, language and Gopher rules, quality score + keep rule",
        description="Curate RUN/sources/ into RUN/curated/: decode/schema check (bad records to a dead-letter "
        "file), normalisation, language filter, Gopher/C4 heuristic rules, then the quality classifier and keep "
        "rule for the components that use it. Runs on any Beam runner; outputs are byte-identical whatever the "
        "runner or its parallelism.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--spec", default="demo", help="mixture spec name or path (default: demo)")
    p.add_argument("--run", dest="run_dir", type=Path, default=Path("runs/demo"), help="run folder with sources/")
    p.add_argument("--force", action="store_true", help="rerun even if RUN/curated is up to date")
    p.add_argument("--json", action="store_true", help="print stats.json instead of the table")
    add_dry_run(p)
    p.set_defaults(func=cmd_curate, beam_args=[])
    pass_unknown_to_beam(p)


def cmd_curate(args: argparse.Namespace) -> int:

    spec = spec_path("mixtures", args.spec)
    pipeline_options(args.beam_args)  # refuse a bad Beam flag before any work
    require_run(args.run_dir, "sources")
    layout = _recipe_layout(args.run_dir, spec)
    if layout is None:  # no recipe stage, or its upstream stages are not done: curate RUN/sources as it is
        layout = RunLayout(args.run_dir, [make_stage(StageArgs(spec, run_dir=args.run_dir, standalone=True))])
    if args.dry_run:
        return print_plan(layout, [STAGE_NAME], [STAGE_NAME] if args.force else [])
    with beam_args(args.beam_args):
        results = layout.run(only=[STAGE_NAME], force=[STAGE_NAME] if args.force else [])
    result = next(r for r in results if r.name == STAGE_NAME)
    stats = json.loads((result.path / STATS_FILE).read_text())
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
        return 0
    if result.state == "ran":  # the stage printed its table
        print(f"curate: ran in {result.seconds:.1f} s -> {result.path}")
    else:
        print(f"curate: up to date ({result.path}); --force reruns")
        print_table(stats)
    return 0


def _recipe_layout(run_dir: Path, spec: Path):  # type: ignore[no-untyped-def]
    """The recipe's layout when it has a curate stage whose upstream stages are done (then `glamkit run` and
    `glamkit curate` share the stage's key); None otherwise (sources read or a classifier trained by hand)."""
    run = layout(run_dir, spec)
    if not any(s.name == STAGE_NAME for s in run.stages):
        return None
    return run if all(run.is_done(n) for n in run.stage(STAGE_NAME).needs) else None
