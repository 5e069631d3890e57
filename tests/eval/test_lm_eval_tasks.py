"""lm-evaluation-harness runs glamkit's tasks, its own tasks on glamkit's checkpoints, and knows GLaM's tasks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from data_specs import SPEC_ROOT
from tests.eval.backend_checks import Direct

pytestmark = pytest.mark.slow  # the session's demo run (real data, a trained checkpoint) takes minutes to build


def test_every_written_yaml_loads_in_lm_evals_task_manager_as_it_is(demo_run: Path) -> None:
    from lm_eval.tasks import TaskManager

    tasks_dir = demo_run / "tasks"
    files = sorted(tasks_dir.glob("*.yaml"))
    before = {f: f.read_bytes() for f in files}
    manager = TaskManager(include_defaults=False, include_path=str(tasks_dir))
    names = [yaml.safe_load(b)["task"] for b in before.values()]
    assert set(names) <= set(manager.all_subtasks)
    assert {"heldout-bpb", "lambada-books", "next-sentence", "wiki-cloze", "heldout-bpb-books"} <= set(names)
    loaded = manager.load(names)["tasks"]
    heldout = [json.loads(line) for line in (tasks_dir / "heldout" / "test.jsonl").read_text().splitlines()]
    by_component: dict[str, list[str]] = {}
    for doc in heldout:
        by_component.setdefault(doc["component"], []).append(doc["doc_id"])
    for name, task in loaded.items():
        config = yaml.safe_load(before[tasks_dir / f"{name}.yaml"])
        assert config["dataset_path"] == "json" and all(Path(p).is_absolute() and Path(p).is_file()
                                                        for p in config["dataset_kwargs"]["data_files"].values())
        docs = list(task.eval_docs)
        assert docs, name
        if name.startswith("heldout-bpb-"):  # one rolling task per component, under a tag, on that component's docs
            assert [d["doc_id"] for d in docs] == by_component[name.removeprefix("heldout-bpb-")]
            assert manager.task_index[name].tags == {"heldout-bpb-components", "glamkit-lm"}
        first = docs[0]
        if task.OUTPUT_TYPE == "multiple_choice":  # Jinja templates, rendered by lm-eval
            assert task.doc_to_text(first) == first["context"]
            assert task.doc_to_choice(first) == first["choices"] and task.doc_to_target(first) == first["label"]
        elif task.OUTPUT_TYPE == "loglikelihood_rolling":
            assert task.doc_to_target(first) == first["text"]
    assert {f: f.read_bytes() for f in files} == before
    assert sum(len(v) for v in by_component.values()) == len(heldout)


def test_lm_evals_own_lambada_openai_runs_on_held_out_book_passages(eval_run: Path, tmp_path: Path) -> None:
    """lm-eval's lambada_openai.yaml, changed only to read a local JSONL, through simple_evaluate with the glamkit
    backend: its perplexity and accuracy are those of the checkpoint's direct forward pass."""
    import lm_eval.tasks
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from eval.backend import GlamkitLM

    passages = [json.loads(line) for line in (eval_run / "tasks" / "lambada-books" / "test.jsonl").read_text()
                .splitlines()][:16]
    data = tmp_path / "lambada-books.jsonl"
    data.write_text("".join(json.dumps({"text": f"{p['context']} {p['target']}"}) + "\n" for p in passages))
    own = Path(lm_eval.tasks.__file__).parent / "lambada" / "lambada_openai.yaml"
    config = yaml.safe_load(own.read_text())
    assert config["dataset_path"] == "EleutherAI/lambada_openai" and config["output_type"] == "loglikelihood"
    config.pop("dataset_name")
    config.update(dataset_path="json", dataset_kwargs={"data_files": {"test": str(data)}})
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "lambada_openai.yaml").write_text(yaml.safe_dump(config))

    manager = TaskManager(include_defaults=False, include_path=str(tmp_path / "tasks"))
    lm = GlamkitLM(run=str(eval_run), batch_size=8)
    results = simple_evaluate(model=lm, tasks=["lambada_openai"], task_manager=manager, bootstrap_iters=0,
                              log_samples=False)["results"]["lambada_openai"]
    direct = Direct(eval_run)
    scored = [direct.loglikelihood(" ".join(p.split(" ")[:-1]), " " + p.split(" ")[-1])
              for p in (f"{q['context']} {q['target']}" for q in passages)]
    assert results["perplexity,none"] == pytest.approx(float(np.exp(-np.mean([s for s, _ in scored]))), rel=1e-5)
    assert results["acc,none"] == pytest.approx(float(np.mean([g for _, g in scored])))


def test_glam_task_groups_name_only_tasks_in_lm_evals_registry() -> None:
    """glam_nlg and glam_nlu list lm-eval's own task names for GLaM's 29 tasks (the registry is indexed, nothing is
    downloaded); the ones lm-eval lacks are the ones the groups' comments and the README name."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import Kind

    folder = SPEC_ROOT / "glam_tasks"
    manager = TaskManager(include_path=str(folder))
    listed = {}
    for group in ("glam_nlg", "glam_nlu"):
        assert manager.task_index[group].kind == Kind.GROUP
        listed[group] = yaml.safe_load((folder / f"{group}.yaml").read_text())["task"]
        for name in listed[group]:
            assert manager.task_index[name].kind in (Kind.TASK, Kind.PY_TASK), (group, name)
    assert len(listed["glam_nlg"]) == 7 and len(listed["glam_nlu"]) == 20  # 27 of GLaM's 29
    assert not {"quac", "race_middle", "race_m"} & set(manager.all_tasks)  # QuAC and RACE-m: still missing


def test_eval_stage_runs_lm_eval_and_its_results_are_byte_identical(eval_run: Path, tmp_path: Path) -> None:
    from data_specs.stages import RunLayout, Stage
    from eval.run import DEFAULT_TASKS, eval_stage

    run = tmp_path / "run"
    run.mkdir()
    for name in ("train", "tokenizer", "tasks"):
        (run / name).symlink_to(eval_run / name)
    stage = Stage("eval", lambda ctx: eval_stage(ctx, DEFAULT_TASKS, limit=4, skip_missing=True), config={"limit": 4})
    outputs, infos = [], []
    for _ in range(2):  # the stage run twice in one run folder, as two `make demo`s after `rm -rf RUN/eval`
        shutil.rmtree(run / "eval", ignore_errors=True)
        [result] = RunLayout(run, [stage]).run()
        assert result.state == "ran"
        outputs.append((run / "eval" / "results.json").read_bytes())
        infos.append(json.loads((run / "logs" / "eval" / "lm-eval-run.json").read_text()))
    assert outputs[0] == outputs[1]
    results = json.loads(outputs[0])
    assert {"date", "git_hash", "pretty_env_info"} <= set(infos[0]) and "date" not in results
    assert infos[0]["date"] != infos[1]["date"]  # what differs between the runs is in logs/
    assert results["lm_eval_version"] and results["n-samples"]["wiki-cloze"]["effective"] == 4
    got = results["results"]
    assert {"heldout-bpb", "lambada-books", "next-sentence", "wiki-cloze"} <= set(got)
    assert {"bits_per_byte,none", "byte_perplexity,none", "word_perplexity,none"} <= set(got["heldout-bpb"])
    assert "exact_match,remove_whitespace" in got["lambada-books"] and "acc_norm,none" in got["wiki-cloze"]
    # the per-component tasks evaluate heldout-bpb's first 4 documents, grouped by component
    components = [t for t in got if t.startswith("heldout-bpb-")]
    assert sum(results["n-samples"][t]["effective"] for t in components) == 4


def test_glamkit_lm_eval_is_lm_evals_cli_with_the_glamkit_model(eval_run: Path, tmp_path: Path) -> None:
    from glamkit.cli import main

    out = tmp_path / "out"
    code = main(["lm-eval", "--model_args", f"run={eval_run}", "--batch_size", "4", "--tasks", "wiki-cloze",
                 "--include_path", str(eval_run / "tasks"), "--limit", "3", "--output_path", str(out)])
    assert code == 0
    [written] = list(out.rglob("results_*.json"))
    results = json.loads(written.read_text())
    assert results["config"]["model"] == "glamkit" and results["n-samples"]["wiki-cloze"]["effective"] == 3
    assert 0.0 <= results["results"]["wiki-cloze"]["acc,none"] <= 1.0
