"""The end-to-end recipe as an ordered list of stages for the stage runner (data_specs.stages).

Stage names are the folders they fill (`runs/<name>/<stage>/`). Each stage's key covers only the settings it
depends on, so changing, say, the keep rule's alpha reruns `curated` and what follows, never `sources` or
`classifier`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from data_specs import specs
from data_specs.stages import RunLayout, Stage
from eval.classifier import classifier_stage
from eval.run import DEFAULT_TASKS, eval_stage
from eval.stage import tasks_stage
from pipelines import tokenizer
from pipelines.curate import stage as curate_stage
from pipelines.mix import stage as mix_stage
from report import mixture as report
from sources.stage import sources_stage
from train.stage import make_stage as train_stage

# The GLaM recipe, in order: (stage, what it does). A stage is listed in `build_stages` once it is implemented.
PLANNED: tuple[tuple[str, str], ...] = (
    ("sources", "fetch the packaged corpora and read every source into document records"),
    ("tasks", "build lm-eval tasks from documents held out before curation"),
    ("classifier", "train and evaluate the hashed linear quality classifier"),
    ("curated", "normalise, filter, dedup, score and Pareto-sample documents (Beam)"),
    ("tokenizer", "train the SentencePiece tokenizer on a weighted sample"),
    ("shards", "sample the weighted mixture into Arrow token shards (Beam)"),
    ("report", "write the mixture stats report (report.json, report.html)"),
    ("train", "train the GLaM model on the shards (JAX)"),
    ("eval", "evaluate the trained model on held-out tasks with lm-evaluation-harness"),
)


DEMO_EVAL_LIMIT = 60  # examples per task in the recipe's eval stage (keeps `make demo` short); `glamkit eval`: all


def build_stages(mixture_spec: str | Path, train_spec: str | Path = "tiny",
                 eval_limit: int | None = DEMO_EVAL_LIMIT) -> list[Stage]:
    """The recipe's stages for a mixture spec and a train spec, in order."""
    mixture = specs.load("mixtures", mixture_spec)
    stages = [
        sources_stage(mixture_spec),
        Stage("tasks", partial(tasks_stage, mixture_spec=mixture_spec), needs=("sources",), version="3",
              config={"seed": mixture.seed, "eval_holdout_fraction": mixture.eval_holdout_fraction,
                      "decontaminate": [mixture.dedup.decontaminate, mixture.dedup.builtin_tasks,
                                        mixture.dedup.decontaminate_ngram,
                                        mixture.dedup.decontaminate_common_documents]},
              description="built-in eval tasks from held-out documents"),
    ]
    if mixture.quality is not None:
        clf = specs.load("classifier", mixture.quality.classifier)
        stages.append(Stage("classifier", partial(classifier_stage, classifier_spec=mixture.quality.classifier),
                            config=clf, needs=("sources",), version="1",
                            description="quality classifier: train, eval.json, eval.png"))
    stages += [
        curate_stage.make_stage(mixture_spec),
        tokenizer.make_stage(mixture_spec),
        mix_stage.make_stage(mixture_spec),
        report.make_stage(mixture_spec),
        train_stage(train_spec),
        Stage("eval", partial(eval_stage, task_names=DEFAULT_TASKS, limit=eval_limit, skip_missing=True),
              config={"tasks": list(DEFAULT_TASKS), "limit": eval_limit}, needs=("train", "tokenizer", "tasks"),
              version="2", description="evaluate the trained model on the built-in tasks (lm-evaluation-harness)"),
    ]
    return stages


def layout(run_dir: str | Path, mixture_spec: str | Path, train_spec: str | Path = "tiny") -> RunLayout:
    return RunLayout(Path(run_dir), build_stages(mixture_spec, train_spec))
