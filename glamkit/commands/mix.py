"""`glamkit tokenizer train`, `glamkit mix` and `glamkit report`: the stages between curation and training.

Each runs its stage through the stage runner: inside the recipe's layout when the stage is part of it and its
upstream stages are done (so `glamkit run` and these commands share stage keys), else on the run folder as it is
(its input folders fingerprinted). `glamkit report --plan SPEC --budget 600B` needs no run at all.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from data_specs import io as fileio
from data_specs import specs
from data_specs.errors import GlamkitError
from data_specs.loader import load_spec, parse_set_args, to_plain
from data_specs.records import component_order
from data_specs.specs import MixtureSpec, spec_path
from data_specs.stages import RunLayout, StageArgs
from data_specs.tokenizer import INFO_FILE
from glamkit.args import add_dry_run, add_set_option, print_plan, require_run
from glamkit.recipe import layout
from pipelines import tokenizer as tokenizer_stage
from pipelines.beam.options import beam_args, pass_unknown_to_beam, pipeline_options
from pipelines.mix import stage as mix_stage
from report import stage as report_stage
from report.plan import plan_report, save_plan

FMT = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tokenizer",
        help="train the SentencePiece tokenizer on a weighted sample of the curated mixture (or fetch a named one)",
        description="Train a SentencePiece model (unigram or BPE, byte fallback, pad 0, eos 1, unk 2) on a "
        "deterministic sample of RUN/curated drawn by the mixture weights, or fetch the pre-trained model the "
        "spec names (tokenizer.kind: pretrained). Writes RUN/tokenizer/tokenizer.model and tokenizer.json.",
        epilog="Examples:\n  glamkit tokenizer train --spec demo --run runs/demo\n"
        "  glamkit tokenizer train --spec demo --run runs/demo --set tokenizer.kind=pretrained "
        "tokenizer.pretrained=mistral-v1",
        formatter_class=FMT,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: p.print_help() or 2)
    t = actions.add_parser("train", help="train (or fetch) the tokenizer into RUN/tokenizer",
                           description="Train (or fetch) the tokenizer into RUN/tokenizer.",
                           epilog="Example:\n  glamkit tokenizer train --spec demo --run runs/demo",
                           formatter_class=FMT)
    _common(t)
    t.set_defaults(func=cmd_tokenizer)

    m = sub.add_parser(
        "mix",
        help="sample the weighted mixture into Arrow token shards (Beam)",
        description="Tokenize RUN/curated, split off validation by document, sample each component at its GLaM "
        "rate (whole repeats plus uniform(doc_id, seed, 'mix') < threshold), pack sequences with EOS, segment ids "
        "and positions, shuffle globally and write RUN/shards/{train,validation}-*.arrow + manifest.json. "
        "Options not listed here are Beam pipeline options.",
        epilog="Examples:\n  glamkit mix --spec demo --run runs/demo\n"
        "  glamkit mix --spec demo --run runs/demo --direct_num_workers=2 --direct_running_mode=multi_processing",
        formatter_class=FMT,
        allow_abbrev=False,
    )
    _common(m)
    m.set_defaults(func=cmd_mix, beam_args=[])
    pass_unknown_to_beam(m)

    r = sub.add_parser(
        "report",
        help="write the mixture report (report.json, report.html), or plan a mixture from its spec alone",
        description="With --run: gather curation, tokenizer and shard stats into RUN/report/report.json and a "
        "self-contained RUN/report/report.html (linked as RUN/report.html). With --plan: from the component sizes "
        "in a mixture spec (tokens_b), print and save the paper's table 3 and the epochs at --budget; no data "
        "needed.",
        epilog="Examples:\n  glamkit report --run runs/demo\n"
        "  glamkit report --plan data_specs/mixtures/glam.yaml --budget 600B",
        formatter_class=FMT,
    )
    r.add_argument("--spec", default="demo", help="mixture spec name or path (default: demo)")
    r.add_argument("--run", dest="run_dir", type=Path, default=None, help="run folder (default: runs/demo)")
    r.add_argument("--force", action="store_true", help="write the report again even if up to date")
    r.add_argument("--plan", metavar="SPEC", help="planning mode: a mixture spec name or path")
    r.add_argument("--budget", help="planning mode: training tokens, e.g. 600B, 1.6T (default: the spec's)")
    r.add_argument("--out", type=Path, default=Path("runs/plans"), help="planning mode: folder for the table "
                   "(default: runs/plans)")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=cmd_report)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", default="demo", help="mixture spec name or path (default: demo)")
    p.add_argument("--run", dest="run_dir", type=Path, default=Path("runs/demo"),
                   help="run folder (default: runs/demo)")
    p.add_argument("--force", action="store_true", help="rerun even if the stage is up to date")
    add_set_option(p, "mixture spec", "mixing.budget_tokens=2000000")
    add_dry_run(p)


# ------------------------------------------------------------------------------------------------ running
def resolve_spec(spec: str, overrides: list[str], run_dir: Path) -> Path:
    """The spec path; with --set overrides, a resolved copy saved in the run folder (stages load specs by path)."""
    path = spec_path("mixtures", spec)
    if not overrides:
        return path


    resolved = load_spec(MixtureSpec, path, parse_set_args(overrides))
    out = run_dir / "specs" / f"{path.stem}-resolved.yaml"
    fileio.write_text(out, yaml.safe_dump(to_plain(resolved), sort_keys=False))
    return out


def stage_layout(run_dir: Path, spec: Path, stage: ModuleType) -> RunLayout:
    """The recipe's layout when it holds the stage with its upstream done, else one with the stage standalone."""
    recipe = layout(run_dir, spec)
    names = [s.name for s in recipe.stages]
    if stage.NAME in names and all(recipe.is_done(n) for n in recipe.stage(stage.NAME).needs):
        return recipe
    return RunLayout(run_dir, [stage.make_stage(StageArgs(spec, run_dir=run_dir, standalone=True))])


def dry_run(args: argparse.Namespace, stage: ModuleType) -> int:
    """--dry-run: the spec resolved with --set (into a temporary folder), the stage plan printed; nothing written."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = resolve_spec(args.spec, args.set, Path(tmp))
        return print_plan(stage_layout(args.run_dir, spec, stage), [stage.NAME], [stage.NAME] if args.force else [])


def run_stage(run_dir: Path, spec: Path, stage: ModuleType, force: bool) -> Any:
    """Run one stage module's stage in `stage_layout`'s layout."""
    name = stage.NAME
    results = stage_layout(run_dir, spec, stage).run(only=[name], force=[name] if force else [])
    return next(r for r in results if r.name == name)


def _state(result: Any) -> str:
    return f"ran in {result.seconds:.1f} s" if result.state == "ran" else "up to date (--force reruns)"


def cmd_tokenizer(args: argparse.Namespace) -> int:

    require_run(args.run_dir, "curated")
    if args.dry_run:
        return dry_run(args, tokenizer_stage)
    spec = resolve_spec(args.spec, args.set, args.run_dir)
    result = run_stage(args.run_dir, spec, tokenizer_stage, args.force)
    info = json.loads((result.path / INFO_FILE).read_text())
    print(f"tokenizer: {_state(result)} -> {result.path}")
    print(f"  {info['kind']} {info.get('model_type') or info.get('pretrained')}, vocabulary {info['vocab_size']}, "
          f"eos {info['eos_id']}, pad {info['pad_id']}, sha256 {info['sha256'][:16]}")
    return 0


def cmd_mix(args: argparse.Namespace) -> int:
    from pipelines.mix.job import MANIFEST

    pipeline_options(args.beam_args)  # refuse a bad Beam flag before any work
    require_run(args.run_dir, "curated", "tokenizer")
    if args.dry_run:
        return dry_run(args, mix_stage)
    spec = resolve_spec(args.spec, args.set, args.run_dir)
    with beam_args(args.beam_args):
        result = run_stage(args.run_dir, spec, mix_stage, args.force)
    manifest = json.loads((result.path / MANIFEST).read_text())
    print(f"mix: {_state(result)} -> {result.path / MANIFEST}")
    print(mix_table(manifest))
    for warning in manifest["extra"].get("warnings", []):
        print(f"warning: {warning}")
    return 0


def mix_table(manifest: dict[str, Any]) -> str:
    lines = [f"{'component':<14}{'available':>12}{'target':>8}{'realised':>10}{'epochs':>9}{'tokens':>12}{'docs':>7}"]
    share = manifest["extra"].get("realised_weight", {})

    for c, m in sorted(manifest["components"].items(), key=lambda kv: component_order(kv[0])):
        lines.append(f"{c:<14}{m['tokens_available']:>12,}{m['target_weight']:>8.3f}{share.get(c, 0):>10.3f}"
                     f"{m['epochs']:>9.3g}{m['tokens']:>12,}{m['documents']:>7,}")
    split = manifest["extra"].get("split_tokens", {})
    lines.append(f"shards: {len(manifest['shards'])} files; train {split.get('train', 0):,} tokens, "
                 f"validation {split.get('validation', 0):,} tokens")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:

    if args.plan:
        spec = specs.load("mixtures", args.plan)
        budget = args.budget or spec.mixing.budget_tokens
        data, table = plan_report(spec, budget)
        paths = save_plan(data, table, args.out, f"{spec.name}-{str(budget).lower()}")
        print(json.dumps(data, indent=2) if args.json else table, end="" if not args.json else "\n")
        print(f"saved: {paths[0]} and {paths[1]}")
        return 0
    if args.budget:
        raise GlamkitError("--budget is for planning mode (--plan SPEC); a run's budget is its spec's")

    run_dir = require_run(args.run_dir or Path("runs/demo"))
    spec = resolve_spec(args.spec, [], run_dir)
    result = run_stage(run_dir, spec, report_stage, args.force)
    link = report_stage.link_report(run_dir)
    if args.json:
        print((result.path / "report.json").read_text(), end="")
    else:
        print(f"report: {_state(result)}")
        print(f"open {link} (-> {result.path / report_stage.REPORT_HTML})")
    return 0
