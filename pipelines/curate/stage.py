"""The recipe's `curated` stage: runs the curate job (pipelines.curate.job, Beam, imported when the stage runs) into
the stage's folder and prints its table. Light at import, so `glamkit --help` loads no Beam."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from data_specs import progress, specs
from data_specs.stages import Stage, StageArgs, make
from pipelines.beam.options import current_beam_args
from pipelines.curate.plan import CURATE_VERSION, DEFAULT_SHARDS, classifier_dir_for, curation_config, standalone_inputs
from pipelines.dedup.config import describe

STAGE_NAME = "curated"  # the stage runner names a stage's folder after it: RUN/curated/


def summary_of(stats: dict[str, Any]) -> dict[str, Any]:
    """The short summary the stage marker keeps (deterministic: counts only)."""
    return {c: {"read": s["read"], "kept": s["kept"], "errored": s["errored"],
                "dropped": sum(s["dropped"].values())} for c, s in stats.get("components", {}).items()}


def curate_stage(ctx: Any, mixture_spec_path: str | Path, num_shards: int = DEFAULT_SHARDS) -> dict[str, Any]:
    """The stage-runner entry point (glamkit/recipe.py): reads ctx.upstream['sources'], 'tasks'
    (decontamination) and 'classifier', writes ctx.out. Beam flags come from
    `pipelines.beam.options.beam_args(...)` (set by `glamkit curate`)."""
    from pipelines.curate.job import PROGRESS_COUNTER, curate  # Beam

    spec = specs.load("mixtures", mixture_spec_path)
    sources_dir = Path(ctx.upstream.get("sources", ctx.run_dir / "sources"))
    classifier_dir = classifier_dir_for(spec, ctx.run_dir, ctx.upstream.get("classifier"))
    task_dir = Path(ctx.upstream.get("tasks", ctx.run_dir / "tasks"))
    args = current_beam_args()
    ctx.log.info("curate: beam args %s", " ".join(args) or "(none: in-process FnApiRunner)")
    ctx.log.info("%s", describe(spec.dedup))
    print(describe(spec.dedup))  # the implied similarity threshold, on the console too
    start = time.perf_counter()
    with progress.watch(PROGRESS_COUNTER, _documents_in(sources_dir), "docs read", log=ctx.log):
        stats = curate(spec, ctx.run_dir, ctx.out, args, ctx.provenance, classifier_dir, sources_dir, num_shards,
                       task_dir=task_dir)
    seconds = time.perf_counter() - start
    if stats:
        print_table(stats)  # what `make demo` shows for this stage
    total = stats.get("total", {})
    ctx.log.info("curate: %s documents, %.1f MB in %.1f s (%.0f docs/s, %.2f MB/s)", total.get("read"),
                 total.get("bytes_in", 0) / 1e6, seconds, total.get("read", 0) / max(seconds, 1e-9),
                 total.get("bytes_in", 0) / 1e6 / max(seconds, 1e-9))
    return summary_of(stats)


def _documents_in(sources_dir: Path) -> int | None:
    """Documents the sources stage wrote (the progress total); None if its stats cannot be read."""
    try:
        stats = json.loads((sources_dir / "stats.json").read_text())
        return sum(s.get("documents", 0) for s in stats["sources"].values() if s.get("for") != "classifier") or None
    except (OSError, ValueError, KeyError, AttributeError):
        return None


NAME = STAGE_NAME
DESCRIPTION = "normalise, filter, dedup, decontaminate, score and Pareto-sample documents (Beam)"


def make_stage(args: StageArgs, num_shards: int = DEFAULT_SHARDS) -> Stage:
    """Needs the `sources`, `tasks` (the eval holdout's tasks, for decontamination) and `classifier` (when the
    mixture has a quality filter) stages; standalone, it fingerprints RUN/sources, RUN/tasks, the spec's task files
    and the classifier folder instead (`standalone_inputs`)."""
    spec = specs.load("mixtures", args.mixture)
    needs = ("sources", "tasks", "classifier") if spec.quality is not None else ("sources", "tasks")
    run = partial(curate_stage, mixture_spec_path=str(args.mixture), num_shards=num_shards)
    return make(NAME, run, curation_config(spec, num_shards), args, needs=needs, version=CURATE_VERSION,
                description=DESCRIPTION,
                standalone_inputs=standalone_inputs(args.mixture, Path(args.run_dir)) if args.standalone else None)


def print_table(stats: dict[str, Any], out: Callable[[str], None] = print) -> None:
    """The per-component read/kept/dropped/errored table (`make demo`, `glamkit curate`)."""
    out(f"{'component':<14}{'read':>8}{'kept':>8}{'dropped':>9}{'errored':>9}{'MB in':>9}{'MB out':>9}"
        "  top drop reasons")
    for component, s in stats["components"].items():
        reasons = sorted(s["dropped"].items(), key=lambda kv: -kv[1])[:3]
        why = ", ".join(f"{r} {n}" for r, n in reasons)
        out(f"{component:<14}{s['read']:>8}{s['kept']:>8}{sum(s['dropped'].values()):>9}{s['errored']:>9}"
            f"{s['bytes_in'] / 1e6:>9.2f}{s['bytes_out'] / 1e6:>9.2f}  {why}")
    t = stats["total"]
    out(f"{'total':<14}{t['read']:>8}{t['kept']:>8}{t['dropped']:>9}{t['errored']:>9}{t['bytes_in'] / 1e6:>9.2f}"
        f"{t['bytes_out'] / 1e6:>9.2f}")
