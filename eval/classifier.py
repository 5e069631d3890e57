"""The recipe's `classifier` stage (train on RUN/sources, evaluate, write eval.json and eval.png) and the evaluation
writer `glamkit classifier eval` shares with it. The computing is filters/classifier_train.py; the figure is
report/classifier.py."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from data_specs import specs
from data_specs.records import Document
from data_specs.specs import ClassifierSpec, KeepRuleSpec
from data_specs.stages import Stage, StageArgs, StageContext, make
from filters.classifier_eval import format_eval
from filters.classifier_train import evaluate, train
from report.classifier import plot_eval  # matplotlib
from sources.stage import load_sources, without_unavailable


def classifier_stage(ctx: StageContext, classifier_spec: str | Path) -> dict[str, Any]:
    """The recipe's `classifier` stage: train on RUN/sources, evaluate, print the held-out-by-host and the worst
    leave-one-source-out AUCs (the keep rule is the mixture's, applied and reported by curation)."""
    spec = without_unavailable(specs.load("classifier", classifier_spec), Path(ctx.upstream["sources"]))
    docs = load_sources(ctx.upstream["sources"])  # every source: the spec's train and test, all are scored
    train(spec, docs, ctx.out)
    result = write_eval(spec, ctx.out, docs, ctx.out)
    print(f"classifier {spec.name} ({spec.backend}):\n{format_eval(result)}")
    return {k: result[k] for k in ("heldout_split", "roc_auc", "pr_auc", "f1", "worst_leave_one_source_out",
                                   "worst_web_leave_one_source_out", "leave_one_source_out_roc_auc")}


def write_eval(
    spec: ClassifierSpec, model_dir: Path, docs_by_source: Mapping[str, list[Document]], out_dir: Path,
    keep: KeepRuleSpec | None = None, keep_from: str | None = None,
) -> dict[str, Any]:
    """Evaluate the model in `model_dir` (filters.classifier_train.evaluate) and write OUT/eval.json and eval.png."""
    result = evaluate(spec, model_dir, docs_by_source, keep, keep_from)
    fileio.write_json(out_dir / "eval.json", result, sort_keys=True, indent=2)
    plot_eval(result, out_dir / "eval.png")
    return result


NAME = "classifier"
DESCRIPTION = "train and evaluate the hashed linear quality classifier"
VERSION = "1"


def make_stage(args: StageArgs) -> Stage | None:
    """Needs `sources`; None when the mixture has no quality filter (no classifier to train)."""
    mixture = specs.load("mixtures", args.mixture)
    if mixture.quality is None:
        return None
    name = mixture.quality.classifier
    return make(NAME, partial(classifier_stage, classifier_spec=name), specs.load("classifier", name), args,
                needs=("sources",), version=VERSION, description=DESCRIPTION)
