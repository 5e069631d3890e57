"""The built-in tasks as genuine lm-evaluation-harness YAMLs in RUN/tasks/, next to their data.

    RUN/tasks/<task>/{test,train}.jsonl       the examples (eval.builtin; the curate job decontaminates against them)
    RUN/tasks/heldout/components/<c>.jsonl    the held-out test documents of component c (a view of test.jsonl)
    RUN/tasks/<task>.yaml                     data_specs/tasks/<task>.yaml with absolute data_files
    RUN/tasks/heldout-bpb-<c>.yaml            heldout-bpb on component c's documents, tag heldout-bpb-components

lm-eval resolves `data_files` against the working directory, not the YAML, so the written paths are absolute: the
folder where the stage's output will live. `lm_eval --include_path RUN/tasks` (or glamkit's TaskManager) loads every
file as it is. A split with no examples is left out of `data_files` (and as `fewshot_split`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from data_specs import SPEC_ROOT
from data_specs.errors import GlamkitError
from eval.builtin import write_jsonl

TEMPLATES = SPEC_ROOT / "tasks"
HELDOUT = "heldout"  # the examples folder of the rolling tasks
HELDOUT_TASK = "heldout-bpb"
COMPONENT_TAG = "heldout-bpb-components"
GROUP_TAGS = {"glamkit-nlg": "nlg", "glamkit-nlu": "nlu", "glamkit-lm": "lm"}  # the study's NLG/NLU/LM sets


def component_file(component: str) -> str:
    return f"{HELDOUT}/components/{component}.jsonl"


def _finalise(config: dict[str, Any], final: Path, out: Path) -> dict[str, Any]:
    """data_files made absolute (under `final`), keeping only splits whose file has examples in `out`."""
    files = config["dataset_kwargs"]["data_files"]
    kept = {split: str(final / rel) for split, rel in files.items()
            if (out / rel).is_file() and (out / rel).stat().st_size > 0}
    config["dataset_kwargs"] = {**config["dataset_kwargs"], "data_files": kept}
    if config.get("fewshot_split") not in kept:
        config.pop("fewshot_split", None)
    return config


def write_task_yamls(out: Path, final: Path) -> list[str]:
    """Write the YAMLs for the examples already in `out` (which becomes `final`); returns the task names written.
    A task without test examples gets no YAML (lm-eval cannot run it)."""
    written = []
    components = sorted(p.stem for p in (out / HELDOUT / "components").glob("*.jsonl"))
    for template in sorted(TEMPLATES.glob("*.yaml")):
        base = yaml.safe_load(template.read_text(encoding="utf-8"))
        configs = [base]
        if base["task"] == HELDOUT_TASK:
            configs += [{**base, "task": f"{HELDOUT_TASK}-{c}", "tag": [COMPONENT_TAG, *base["tag"]],
                         "dataset_kwargs": {"data_files": {"test": component_file(c)}}} for c in components]
        for config in configs:
            config = _finalise(json.loads(json.dumps(config)), final, out)
            if "test" not in config["dataset_kwargs"]["data_files"]:
                continue
            (out / f"{config['task']}.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                                                        encoding="utf-8")
            written.append(config["task"])
    return written


def write_component_views(out: Path, heldout_test: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """heldout/components/<c>.jsonl: the held-out test documents of each component, in test.jsonl's order."""
    by_component: dict[str, list[Mapping[str, Any]]] = {}
    for doc in heldout_test:
        by_component.setdefault(doc["component"], []).append(doc)
    return {c: write_jsonl(out / component_file(c), docs) for c, docs in sorted(by_component.items())}


def limited_samples(manager: Any, tasks: Mapping[str, Any], limit: int | None) -> dict[str, list[int]] | None:
    """lm-eval `samples` for "the first `limit` examples": the first `limit` of each task, except that the
    per-component heldout tasks take those of their documents among heldout-bpb's first `limit`, so the overall and
    per-component figures describe the same documents (and the backend scores each document once)."""
    if limit is None:
        return None
    samples = {}
    first_heldout: set[str] | None = None
    for name, task in tasks.items():
        docs = list(task.eval_docs)
        if COMPONENT_TAG in tags_of(manager, name):
            if first_heldout is None:
                files = task.config.dataset_kwargs["data_files"]["test"]
                heldout = Path(files).parent.parent / "test.jsonl"
                with open(heldout, encoding="utf-8") as f:
                    first_heldout = {json.loads(line)["doc_id"] for _, line in zip(range(limit), f, strict=False)}
            samples[name] = [i for i, doc in enumerate(docs) if doc["doc_id"] in first_heldout]
        else:
            samples[name] = list(range(min(limit, len(docs))))
    return samples


def tags_of(manager: Any, task: str) -> set[str]:
    """A task's tags, from lm-eval's task index (a loaded Task no longer has them)."""
    entry = manager.task_index.get(task)
    return set(entry.tags) if entry is not None else set()


def study_group(manager: Any, task: str) -> str:
    """nlg, nlu or lm: the study's set of a task, from its tag."""
    groups = sorted({GROUP_TAGS[t] for t in tags_of(manager, task) if t in GROUP_TAGS})
    if len(groups) != 1:
        raise GlamkitError(f"task {task}: needs exactly one of the tags {', '.join(GROUP_TAGS)} to be in a study")
    return groups[0]
