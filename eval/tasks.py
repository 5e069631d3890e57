"""Tasks in lm-evaluation-harness's layout over local JSONL: prompts, few-shot demonstrations and metrics.

A task's `dataset_path` is a folder of `<split>.jsonl` files (or one .jsonl file: the test split). Few-shot
demonstrations come from `fewshot_split`, never the test split, chosen per evaluated example by a keyed hash
(`uniform`), so prompts are deterministic and never contain the example being evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_specs.errors import GlamkitError
from data_specs.hashing import uniform
from data_specs.specs import TaskSpec
from eval import metrics as M
from eval.templates import render

Doc = Mapping[str, Any]


def load_splits(task: TaskSpec, builtin_root: Path | None = None) -> dict[str, list[dict]]:
    """The task's splits as lists of JSON objects."""
    path_text = task.dataset_path
    if path_text.startswith("builtin:"):
        if builtin_root is None:
            raise GlamkitError(f"task {task.task}: built-in dataset {path_text} needs a run with built tasks")
        path = builtin_root / path_text.split(":", 1)[1]
    else:
        path = Path(path_text)
    files = {task.test_split: path} if path.is_file() else {p.stem: p for p in sorted(path.glob("*.jsonl"))}
    if task.test_split not in files:
        raise GlamkitError(f"task {task.task}: no {task.test_split!r} split at {path}")
    splits = {}
    for split, file in files.items():
        with open(file, encoding="utf-8") as f:
            splits[split] = [json.loads(line) for line in f if line.strip()]
    return splits


def choices_of(task: TaskSpec, doc: Doc) -> list[str]:
    choices = render(task.doc_to_choice, doc)
    if not isinstance(choices, list) or not choices:
        raise GlamkitError(f"task {task.task}: doc_to_choice must give a non-empty list, got {choices!r}")
    return [str(c) for c in choices]


def gold_index(task: TaskSpec, doc: Doc, choices: list[str]) -> int:
    target = render(task.doc_to_target, doc)
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str) and target in choices:
        return choices.index(target)
    if isinstance(target, str) and target.isdigit():
        return int(target)
    raise GlamkitError(f"task {task.task}: target {target!r} is neither an index nor one of the choices")


def target_text(task: TaskSpec, doc: Doc) -> str:
    if task.output_type == "multiple_choice":
        choices = choices_of(task, doc)
        return choices[gold_index(task, doc, choices)]
    return str(render(task.doc_to_target, doc))


def fewshot_examples(task: TaskSpec, index: int, doc: Doc, pool: Sequence[Doc], seed: int) -> list[Doc]:
    """`num_fewshot` demonstrations for test example `index`, ranked by a keyed hash; never the example itself."""
    if task.num_fewshot == 0:
        return []
    if task.fewshot_split is None or task.fewshot_split == task.test_split:
        raise GlamkitError(f"task {task.task}: num_fewshot > 0 needs a fewshot_split other than the test split")
    ranked = sorted(range(len(pool)), key=lambda j: uniform(f"{index}:{j}", seed, f"fewshot:{task.task}"))
    chosen = [pool[j] for j in ranked if pool[j] != doc][: task.num_fewshot]
    if len(chosen) < task.num_fewshot:
        raise GlamkitError(
            f"task {task.task}: fewshot split has {len(chosen)} usable examples, need {task.num_fewshot}"
        )
    return chosen


def build_prompt(task: TaskSpec, index: int, doc: Doc, pool: Sequence[Doc], seed: int = 0) -> str:
    """description + demonstrations (text + target_delimiter + target) joined by fewshot_delimiter + the text."""
    parts = [f"{render(task.doc_to_text, ex)}{task.target_delimiter}{target_text(task, ex)}"
             for ex in fewshot_examples(task, index, doc, pool, seed)]
    parts.append(str(render(task.doc_to_text, doc)))
    return task.description + task.fewshot_delimiter.join(parts)


def _rolling_results(cols: tuple[list, ...], wanted: list[str]) -> dict[str, Any]:
    corpus = M.rolling_metrics(*cols)
    return {name: {"value": corpus[name],
                   "stderr": M.bootstrap_stderr(lambda *c, _n=name: M.rolling_metrics(*c)[_n], cols)}
            for name in wanted}


def evaluate_task(task: TaskSpec, splits: Mapping[str, list[dict]], lm: Any, seed: int = 0,
                  limit: int | None = None) -> dict[str, Any]:
    """Run one task with a scorer `lm` (see eval.lm.TokenLM) -> {metric: {value, stderr}, n}."""
    test = splits[task.test_split][:limit] if limit else splits[task.test_split]
    pool = splits.get(task.fewshot_split or "", [])
    prompts = [build_prompt(task, i, doc, pool, seed) for i, doc in enumerate(test)]
    wanted = [m.metric for m in task.metric_list]
    per_doc: dict[str, list[float]] = {}
    out: dict[str, Any] = {"n": len(test), "output_type": task.output_type, "group": task.group}

    if task.output_type == "multiple_choice":
        requests, spans, golds, lengths = [], [], [], []
        for prompt, doc in zip(prompts, test, strict=True):
            choices = choices_of(task, doc)
            golds.append(gold_index(task, doc, choices))
            spans.append((len(requests), len(choices)))
            requests += [(prompt, f"{task.target_delimiter}{c}") for c in choices]
            lengths.append([len(c) for c in choices])
        ll = np.array([score for score, _ in lm.loglikelihood(requests)])
        acc, acc_norm = [], []
        for (start, n), gold, lens in zip(spans, golds, lengths, strict=True):
            scores = ll[start : start + n]
            acc.append(float(np.argmax(scores) == gold))
            acc_norm.append(float(np.argmax(scores / np.maximum(np.array(lens), 1)) == gold))
        per_doc = {"acc": acc, "acc_norm": acc_norm}
    elif task.output_type == "generate_until":
        gen = task.generation_kwargs
        if gen is None:
            raise GlamkitError(f"task {task.task}: generate_until needs generation_kwargs")
        outputs = lm.generate_until([(p, gen.until, gen.max_gen_toks) for p in prompts])
        targets = [target_text(task, d) for d in test]
        per_doc = {"exact_match": [M.exact_match(o, t) for o, t in zip(outputs, targets, strict=True)],
                   "f1": [M.f1(o, t) for o, t in zip(outputs, targets, strict=True)]}
        out["samples"] = [{"prompt_tail": p[-80:], "output": o, "target": t}
                          for p, o, t in list(zip(prompts, outputs, targets, strict=True))[:5]]
    else:
        texts = [str(render(task.doc_to_text, d)) for d in test]
        scored = lm.loglikelihood_rolling(texts)
        cols = ([s for s, _ in scored], [n for _, n in scored], [len(t.split()) for t in texts],
                [len(t.encode()) for t in texts])
        out.update(_rolling_results(cols, wanted))
        components = [d.get("component") for d in test]
        if test and None not in components:  # per-component figures from the same scores, not a second pass
            out["per_component"] = {}
            for comp in sorted(set(components)):
                idx = [i for i, c in enumerate(components) if c == comp]
                sub = tuple([col[i] for i in idx] for col in cols)
                out["per_component"][comp] = {"n": len(idx), "output_type": task.output_type, "group": task.group,
                                              **_rolling_results(sub, wanted)}
        return out

    for name in wanted:
        if name not in per_doc:
            raise GlamkitError(f"task {task.task}: metric {name} does not apply to {task.output_type}")
        value, stderr = M.mean_and_stderr(per_doc[name])
        out[name] = {"value": value, "stderr": stderr}
    return out
