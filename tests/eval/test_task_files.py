"""The tasks stage's lm-eval YAMLs, on hand-made examples: lm-eval loads them, and `limit` picks the same documents
for heldout-bpb and its per-component tasks."""

from __future__ import annotations

from pathlib import Path

import yaml

from eval.builtin import write_tasks
from eval.task_files import limited_samples, study_group, write_component_views, write_task_yamls

COMPONENTS = ["news", "books", "news", "web", "books", "news"]


def _tasks() -> dict:
    heldout = [{"text": f"Document {i} of the {c} component.\nIt has two lines.", "component": c, "doc_id": f"{c}/{i}"}
               for i, c in enumerate(COMPONENTS)]
    cloze = [{"context": f"Sentence {i} ends with the", "choices": ["word", "other"], "label": i % 2,
              "doc_id": f"w/{i}"} for i in range(5)]
    lambada = [{"context": f"A passage {i} that ends with a", "target": "word", "doc_id": f"b/{i}"} for i in range(3)]
    return {"heldout": {"test": heldout, "train": heldout[:1]},
            "lambada-books": {"test": lambada, "train": lambada[:2]},
            "next-sentence": {"test": [], "train": []},  # no examples: no YAML
            "wiki-cloze": {"test": cloze, "train": []}}  # no demonstrations: no fewshot_split


def _write(out: Path) -> list[str]:
    tasks = _tasks()
    write_tasks(tasks, out)
    assert write_component_views(out, tasks["heldout"]["test"]) == {"books": 2, "news": 3, "web": 1}
    return write_task_yamls(out, out.resolve())


def test_yamls_load_in_lm_eval_and_read_their_examples(tmp_path: Path) -> None:
    from lm_eval.tasks import TaskManager

    names = _write(tmp_path)
    assert names == ["heldout-bpb", "heldout-bpb-books", "heldout-bpb-news", "heldout-bpb-web", "lambada-books",
                     "wiki-cloze"]
    cloze = yaml.safe_load((tmp_path / "wiki-cloze.yaml").read_text())
    assert "fewshot_split" not in cloze and set(cloze["dataset_kwargs"]["data_files"]) == {"test"}
    assert cloze["tag"] == ["glamkit-nlu"] and cloze["doc_to_text"] == "{{context}}"
    manager = TaskManager(include_defaults=False, include_path=str(tmp_path))
    assert set(manager.all_tags) == {"glamkit-lm", "glamkit-nlg", "glamkit-nlu", "heldout-bpb-components"}
    tasks = manager.load(names)["tasks"]
    assert [d["doc_id"] for d in tasks["heldout-bpb-news"].eval_docs] == ["news/0", "news/2", "news/5"]
    assert len(tasks["heldout-bpb"].eval_docs) == 6 and len(tasks["wiki-cloze"].eval_docs) == 5
    doc = tasks["lambada-books"].eval_docs[0]
    assert tasks["lambada-books"].doc_to_text(doc) == doc["context"] and tasks["lambada-books"].doc_to_target(doc) \
        == "word"
    assert [study_group(manager, n) for n in ("heldout-bpb-web", "lambada-books", "wiki-cloze")] == ["lm", "nlg",
                                                                                                    "nlu"]

    samples = limited_samples(manager, tasks, 4)  # heldout-bpb's first 4 documents: news/0 books/1 news/2 web/3
    assert samples["heldout-bpb"] == [0, 1, 2, 3] and samples["wiki-cloze"] == [0, 1, 2, 3]
    assert samples["heldout-bpb-news"] == [0, 1] and samples["heldout-bpb-books"] == [0]
    assert samples["heldout-bpb-web"] == [0] and samples["lambada-books"] == [0, 1, 2]
    assert limited_samples(manager, tasks, None) is None


def test_written_paths_point_where_the_stage_output_will_live(tmp_path: Path) -> None:
    out, final = tmp_path / ".tasks-tmp", tmp_path / "run" / "tasks"
    tasks = _tasks()
    write_tasks(tasks, out)
    write_component_views(out, tasks["heldout"]["test"])
    write_task_yamls(out, final)
    files = yaml.safe_load((out / "heldout-bpb-web.yaml").read_text())["dataset_kwargs"]["data_files"]
    assert files == {"test": str(final / "heldout" / "components" / "web.jsonl")}
