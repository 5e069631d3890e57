"""Evaluate with lm-evaluation-harness: `simple_evaluate` over a folder of task YAMLs, results as lm-eval writes them.

Task loading, prompts, few-shot sampling and metrics are lm-eval's. The task index is built from the given folder
only (`TaskManager(include_defaults=False)`): indexing lm-eval's ~14,700 bundled tasks costs seconds per call and
none of them is needed for the built-in tasks. Run-dependent fields of lm-eval's results (date, timings, git hash,
environment) are split off (`split_run_info`) so that the results file of a stage is byte-identical across runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from data_specs.errors import GlamkitError

# Keys of lm-eval's results that change from run to run; they go to logs/, never into a stage's output.
RUN_DEPENDENT = ("date", "start_time", "end_time", "total_evaluation_time_seconds", "git_hash", "upper_git_hash",
                 "pretty_env_info", "transformers_version")
BOOTSTRAP_ITERS = 1000  # only for lm-eval's bootstrapped metrics (none of the built-in tasks has one)


def task_manager(include_path: Path | Sequence[Path], include_defaults: bool = False) -> Any:
    """lm-eval's TaskManager over the given folder(s) of YAMLs (absolute, so the index does not depend on cwd)."""
    from lm_eval.tasks import TaskManager

    paths = [include_path] if isinstance(include_path, (str, Path)) else list(include_path)
    missing = [str(p) for p in paths if not Path(p).is_dir()]
    if missing:
        raise GlamkitError(f"no task folder at {', '.join(missing)} (run the tasks stage first)")
    return TaskManager(include_path=[str(Path(p).absolute()) for p in paths], include_defaults=include_defaults)


def load_tasks(manager: Any, names: Sequence[str]) -> dict[str, Any]:
    """Task name (tags and groups expanded) -> lm-eval Task, datasets loaded; an unknown name is a GlamkitError."""
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise GlamkitError(f"unknown task {', '.join(unknown)} (have: {', '.join(manager.all_tasks)})")
    return dict(sorted(manager.load(list(names))["tasks"].items()))


def evaluate(lm: Any, manager: Any, tasks: Mapping[str, Any], samples: Mapping[str, list[int]] | None = None,
             num_fewshot: int | None = None) -> dict[str, Any]:
    """lm-eval's `simple_evaluate` on loaded tasks (`load_tasks`), with lm-eval's default seeds; `samples` picks
    the examples of each task (None: all). Returns lm-eval's results dict (per-example logs not kept)."""
    from lm_eval import simple_evaluate

    # lm-eval bootstraps standard errors in a forked process pool; forking a process that runs JAX can deadlock.
    os.environ.setdefault("DISABLE_MULTIPROC", "1")
    results = simple_evaluate(model=lm, tasks=list(tasks.values()), task_manager=manager,
                              samples=dict(samples) if samples is not None else None, num_fewshot=num_fewshot,
                              bootstrap_iters=BOOTSTRAP_ITERS, log_samples=False)
    if results is None:
        raise GlamkitError("lm-eval returned no results (not the primary process)")
    return results


def split_run_info(results: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(results without run-dependent fields, those fields)."""
    stable = {k: v for k, v in results.items() if k not in RUN_DEPENDENT}
    return stable, {k: results[k] for k in RUN_DEPENDENT if k in results}


def to_json(results: Mapping[str, Any]) -> str:
    """Byte-stable JSON (sorted keys; numpy scalars as numbers, as lm-eval writes them)."""
    from lm_eval.utils import handle_non_serializable

    return json.dumps(results, sort_keys=True, indent=2, default=handle_non_serializable, ensure_ascii=False) + "\n"


def write_results(results: Mapping[str, Any], out: Path, run_info_out: Path) -> None:
    """lm-eval's results, run-dependent fields moved to `run_info_out`; each file written atomically."""
    stable, info = split_run_info(results)
    for path, data in ((out, stable), (run_info_out, info)):
        fileio.write_text(path, to_json(data))


def metric_values(results: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """task -> {"metric,filter": value} for every numeric metric (standard errors left out)."""
    out = {}
    for task, row in results["results"].items():
        out[task] = {k: float(v) for k, v in row.items()
                     if "," in k and "_stderr," not in k and isinstance(v, (int, float))}
    return out


def table(results: Mapping[str, Any]) -> str:
    """lm-eval's own results table."""
    from lm_eval.utils import make_table

    return make_table(dict(results))
