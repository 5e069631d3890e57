"""`glamkit classifier train|eval|score`."""

from __future__ import annotations

import argparse
from pathlib import Path

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
        "eval", help="write eval.json and eval.png (held-out, leave-one-source-out, per-component scores)",
        description="Evaluate a trained classifier: held-out ROC/PR-AUC and F1, leave-one-source-out AUCs, and "
        "per-component score histograms and keep rates under the spec's keep rule.",
        epilog="Example:\n  glamkit classifier eval --spec demo --run runs/demo",
        formatter_class=FMT,
    )
    _common(p)
    p.set_defaults(func=cmd_eval)

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


def _load(args: argparse.Namespace):
    from data_specs import specs
    from pipelines.classifier_job import load_sources

    spec = specs.load("classifier", args.spec)
    out = args.out or args.run_dir / "classifier"
    return spec, out, load_sources(args.run_dir)


def cmd_train(args: argparse.Namespace) -> int:
    from pipelines.classifier_job import train

    spec, out, docs = _load(args)
    metrics = train(spec, docs, out)
    print(f"classifier {spec.name} ({spec.backend}) -> {out}")
    print(f"held-out: ROC-AUC {metrics['roc_auc']:.3f}  PR-AUC {metrics['pr_auc']:.3f}  F1 {metrics['f1']:.3f}"
          f"  ({metrics['n']} documents)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pipelines.classifier_job import evaluate

    spec, out, docs = _load(args)
    result = evaluate(spec, out, docs, out)
    print(format_eval(result))
    print(f"wrote {out / 'eval.json'} and {out / 'eval.png'}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from pipelines.classifier_job import score_file

    n = score_file(args.model, args.input, args.output)
    print(f"scored {n} documents -> {args.output}")
    return 0


def format_eval(result: dict) -> str:
    lines = [f"held-out: ROC-AUC {result['roc_auc']:.3f}  PR-AUC {result['pr_auc']:.3f}  F1 {result['f1']:.3f}"]
    lines.append("leave-one-source-out ROC-AUC: " + ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(result["leave_one_source_out_roc_auc"].items())))
    lines.append(f"{'component':<14}{'docs':>7}{'mean score':>12}{'keep rate':>11}")
    for name, c in result["components"].items():
        lines.append(f"{name:<14}{c['documents']:>7}{c['mean_score']:>12.3f}{c['keep_rate']:>11.3f}")
    return "\n".join(lines)
