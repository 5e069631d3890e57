"""`glamkit classifier train|eval|score`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from data_specs import io as fileio
from data_specs import specs
from data_specs.errors import GlamkitError
from eval.classifier import write_eval
from filters.classifier_eval import format_eval
from filters.classifier_train import score_file, train
from glamkit.args import add_dry_run, require_run
from glamkit.calibration import calibrate_run, calibration_record, format_calibration
from report.calibration import plot_calibration
from sources.stage import load_sources

FMT = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "classifier",
        help="train, evaluate and apply the hashed linear quality classifier",
        description="GLaM's web-quality filter: a linear classifier on hashed word n-grams (fastText or "
        "scikit-learn), curated text as positives, other web pages as negatives, split by group.",
        epilog="Example:\n  glamkit classifier train --spec demo --run runs/demo\n"
        "  glamkit classifier eval --spec demo --run runs/demo",
        formatter_class=FMT,
    )
    cmds = group.add_subparsers(dest="classifier_command", metavar="ACTION", required=True)

    p = cmds.add_parser(
        "train", help="train on a run's source documents and print held-out metrics",
        description="Train the classifier of a spec on RUN/sources/, holding out whole groups (works, sites, "
        "newsgroups, debates), and save it with a metadata sidecar.",
        epilog="Example:\n  glamkit classifier train --spec demo --run runs/demo --out runs/demo/classifier",
        formatter_class=FMT,
    )
    _common(p)
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser(
        "eval", help="write eval.json and eval.png (held-out by host, leave-one-source-out, per-component scores)",
        description="Evaluate a trained classifier: ROC/PR-AUC and F1 on held-out groups (hosts: the model never "
        "saw them) next to the leave-one-source-out AUCs (the worst named), per-component score histograms, and "
        "each component's keep rate under the keep rule the mixture applies (named in the output).",
        epilog="Example:\n  glamkit classifier eval --spec demo --run runs/demo --mixture demo",
        formatter_class=FMT,
    )
    _common(p)
    p.add_argument("--mixture", default="demo", help="mixture spec whose keep rule the keep rates use (default: "
                   "demo); an alpha 'auto' is taken from RUN/curated, else fitted as `calibrate` does")
    p.set_defaults(func=cmd_eval)

    p = cmds.add_parser(
        "calibrate", help="fit the Pareto keep rule's alpha: kept pages' scores like the held-out positives'",
        description="Fit the keep rule's alpha as GPT-3 meant it: the web pages kept under P(keep) = (2 - s)^-alpha "
        "should score like curated text the classifier never saw (minimal Kolmogorov-Smirnov distance to the "
        "held-out positives' scores), or keep a target fraction (--target-keep). Candidates: the pages that reached "
        "the quality score in RUN/curated, or before curation every page of the quality-filtered components in "
        "RUN/sources. Prints the fitted alpha, the keep curve and the keep rate, and writes calibration.json/.png "
        "into the model folder. A mixture can say `keep: {kind: pareto, alpha: auto}` to have curation fit it.",
        epilog="Examples:\n  glamkit classifier calibrate --run runs/demo\n"
        "  glamkit classifier calibrate --run runs/demo --target-keep 0.2",
        formatter_class=FMT,
    )
    p.add_argument("--run", dest="run_dir", type=Path, default=Path("runs/demo"), help="run folder (default: "
                   "runs/demo)")
    p.add_argument("--mixture", default="demo", help="mixture spec: its quality-filtered components and current "
                   "rule (default: demo)")
    p.add_argument("--model", type=Path, help="classifier folder (default: RUN/classifier)")
    p.add_argument("--target-keep", type=float, metavar="FRACTION", help="fit to this expected keep fraction "
                   "instead of the held-out positives")
    p.set_defaults(func=cmd_calibrate)

    p = cmds.add_parser(
        "score", help="score a JSONL/Parquet file of document records",
        description="Add meta['quality_score'] to every record of IN and write OUT (.jsonl.gz or .parquet).",
        epilog="Example:\n  glamkit classifier score --model runs/demo/classifier docs.jsonl.gz scored.parquet",
        formatter_class=FMT,
    )
    p.add_argument("--model", required=True, type=Path, help="a trained classifier folder")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.set_defaults(func=cmd_score)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", default="demo", help="classifier spec name or path (default: demo)")
    p.add_argument("--run", dest="run_dir", type=Path, default=Path("runs/demo"), help="run folder with sources/")
    p.add_argument("--out", type=Path, help="model folder (default: RUN/classifier)")
    add_dry_run(p)


def _load(args: argparse.Namespace):
    spec = specs.load("classifier", args.spec)
    out = args.out or args.run_dir / "classifier"
    require_run(args.run_dir, "sources")
    if args.dry_run:
        print(f"dry run: classifier {args.classifier_command} {spec.name} ({spec.backend}) on "
              f"{args.run_dir / 'sources'} -> {out} (nothing written)")
        return spec, out, None
    return spec, out, load_sources(args.run_dir)


def cmd_train(args: argparse.Namespace) -> int:
    spec, out, docs = _load(args)
    if docs is None:
        return 0
    metrics = train(spec, docs, out)
    print(f"classifier {spec.name} ({spec.backend}) -> {out}")
    print(f"held-out by {spec.group_key}: ROC-AUC {metrics['roc_auc']:.3f}  PR-AUC {metrics['pr_auc']:.3f}  "
          f"F1 {metrics['f1']:.3f}  ({metrics['n']} documents); leave-one-source-out AUCs: `glamkit classifier "
          f"eval` (a held-out figure alone overstates what the model learned)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    spec, out, docs = _load(args)
    if docs is None:
        return 0
    keep, named = _mixture_keep(args.mixture, args.run_dir, out)
    result = write_eval(spec, out, docs, out, keep, named)
    print(format_eval(result))
    print(f"wrote {out / 'eval.json'} and {out / 'eval.png'}")
    return 0


def _mixture_keep(mixture: str, run_dir: Path, model_dir: Path):
    """The mixture's keep rule with alpha resolved (auto: as curation fitted it in RUN/curated, else fitted now),
    and where it came from, in words."""

    spec = specs.load("mixtures", mixture)
    if spec.quality is None:
        return None, None
    keep, named = spec.quality.keep, f"mixture {spec.name}"
    if not keep.auto:
        return keep, named
    stats = run_dir / "curated" / "stats.json"
    fitted = json.loads(stats.read_text()).get("keep_rules", {}) if stats.exists() else {}
    alphas = sorted({r["alpha"] for r in fitted.values() if "alpha" in r})
    if len(alphas) == 1:
        return replace(keep, alpha=alphas[0], target_keep=None), f"{named}, alpha auto as fitted by curation ({stats})"

    cal, _, _ = calibrate_run(run_dir, spec, model_dir, keep.target_keep)
    return replace(keep, alpha=cal.alpha, target_keep=None), f"{named}, alpha auto fitted now on {run_dir}"


def cmd_calibrate(args: argparse.Namespace) -> int:


    spec = specs.load("mixtures", args.mixture)
    model = args.model or require_run(args.run_dir, "classifier") / "classifier"
    cal, cands, reference = calibrate_run(args.run_dir, spec, model, args.target_keep)
    print(format_calibration(cal, cands, spec.quality.keep if spec.quality else None, reference))
    fileio.write_json(model / "calibration.json", calibration_record(cal, cands), sort_keys=True, indent=2)
    plot_calibration(cal, cands.scores, reference, model / "calibration.png")
    print(f"wrote {model / 'calibration.json'} and {model / 'calibration.png'}; to use it: keep: {{kind: pareto, "
          f"alpha: {cal.alpha:.3g}}} in the mixture, or alpha: auto to have curation fit it on every run")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    for path in (args.model, args.input):
        if not path.exists():
            raise GlamkitError(f"{path}: no such file or folder")
    n = score_file(args.model, args.input, args.output)
    print(f"scored {n} documents -> {args.output}")
    return 0
