"""The end-to-end recipe: the stage modules in order, for the stage runner (data_specs.stages).

Every stage module exposes the same three names: NAME (its folder, `runs/<name>/<stage>/`), DESCRIPTION (what
`glamkit --help`, `glamkit run` and `glamkit stages` print) and `make_stage(args: StageArgs) -> Stage | None`
(None: not part of this recipe, e.g. no classifier without a quality filter). Each stage's key covers only the
settings it depends on, so changing, say, the keep rule's alpha reruns `curated` and what follows, never `sources` or
`classifier`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from data_specs.stages import RunLayout, Stage, StageArgs
from eval import classifier as classifier_stage
from eval import run as eval_stage
from eval import stage as tasks_stage
from pipelines import tokenizer as tokenizer_stage
from pipelines.curate import stage as curate_stage
from pipelines.mix import stage as mix_stage
from report import stage as report_stage
from sources import stage as sources_stage
from train import stage as train_stage

# The GLaM recipe, in order.
STAGES: tuple[ModuleType, ...] = (sources_stage, tasks_stage, classifier_stage, curate_stage, tokenizer_stage,
                                  mix_stage, report_stage, train_stage, eval_stage)
DEMO_EVAL_LIMIT = 60  # examples per task in the recipe's eval stage (keeps `make demo` short); `glamkit eval`: all

def stage_names() -> list[str]:
    """Every stage of the recipe, in order (the choices of --only and --force)."""
    return [m.NAME for m in STAGES]


def stage_help() -> str:
    """One line per stage: its name and what it does."""
    return "\n".join(f"  {m.NAME:<11} {m.DESCRIPTION}" for m in STAGES)


def build_stages(mixture_spec: str | Path, train_spec: str | Path = "tiny",
                 eval_limit: int | None = DEMO_EVAL_LIMIT, run_dir: Path = Path(".")) -> list[Stage]:
    """The recipe's stages for a mixture spec and a train spec, in order."""
    args = StageArgs(mixture_spec, train_spec, Path(run_dir), eval_limit=eval_limit)
    return [stage for module in STAGES if (stage := module.make_stage(args)) is not None]


def layout(run_dir: str | Path, mixture_spec: str | Path, train_spec: str | Path = "tiny") -> RunLayout:
    return RunLayout(Path(run_dir), build_stages(mixture_spec, train_spec, run_dir=Path(run_dir)))
