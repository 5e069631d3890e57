"""The built-in tasks' example order: a task's first N examples (what `--limit N` scores) sample every source."""

from __future__ import annotations

from data_specs.records import Document
from eval.builtin import build_tasks

SOURCES = {"aaa-feeds": "forums", "mmm-news": "news", "zzz-wiki": "wikipedia"}


def _docs() -> list[Document]:
    text = "A sentence about the weather today. Another sentence follows it here. " * 4
    return [Document(f"{source}/{i:04d}", component, source, f"{source} {i}. {text}")
            for source, component in SOURCES.items() for i in range(30)]


def test_first_examples_of_heldout_come_from_every_source_not_the_first_id() -> None:
    tasks = build_tasks(_docs(), seed=0)
    first = tasks["heldout"]["test"][:15]
    assert {ex["doc_id"].split("/")[0] for ex in first} == set(SOURCES)


def test_order_is_fixed_by_the_seed_and_not_by_the_input_order() -> None:
    docs = _docs()
    ids = [ex["doc_id"] for ex in build_tasks(docs, seed=0)["heldout"]["test"]]
    assert ids == [ex["doc_id"] for ex in build_tasks(list(reversed(docs)), seed=0)["heldout"]["test"]]
    assert ids != [ex["doc_id"] for ex in build_tasks(docs, seed=1)["heldout"]["test"]]
    assert ids != sorted(ids)
