"""Dedup, decontamination and the eval holdout inside the curate job, on the real demo corpora.

One run folder per module: real news (lee-background), books (the Gutenberg plays, both editions of each), forums
and web sources from the session's demo run, plus two planted sources: a real news article, lightly edited (3% of
its words changed, whitespace shuffled), planted into the web and the forum components. A task file (its own field
names) holds a real passage of one news article, and 12-word phrases of another. The job runs once with the
in-process runner, again with 2 workers and once more: the bytes must be identical.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_specs import specs
from data_specs.records import Document, read_jsonl_gz, write_jsonl_gz
from filters import dedup as fd
from filters.dedup import task_folder_texts as task_texts
from filters.holdout import is_eval_holdout
from pipelines.curate.job import curate
from tests.pipelines.curate_helpers import build_tasks, tree_digest
from tests.pipelines.dedup_helpers import perturb

pytestmark = pytest.mark.slow

SEED = 1234
MIXTURE = """
name: dedup-test
seed: 1234
components:
  news:   {{weight: 0.3, sources: [lee-background]}}
  books:  {{weight: 0.3, sources: [shakespeare]}}
  forums: {{weight: 0.2, sources: [mini-newsgroup, planted-forums]}}
  web:    {{weight: 0.2, sources: [trafilatura-pages, iana-warc, planted-web]}}
rules:
  books: {{max_words: 2000000}}
  forums: {{min_words: 20}}
  news: {{min_words: 30}}
dedup:
  ngram: 3
  fold_spelling: true
  num_perm: 120
  bands: 60
  rows: 2
  min_similarity: 0.3
  tasks: [{{path: {tasks}, fields: [passage, question], name: quiz}}]
eval_holdout_fraction: 0.05
"""



@pytest.fixture(scope="module")
def planted(demo_sources_run: Path, tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("dedup") / "run"
    (run / "sources").mkdir(parents=True)
    for name in ("lee-background", "shakespeare", "mini-newsgroup", "trafilatura-pages", "iana-warc"):
        shutil.copy(demo_sources_run / "sources" / f"{name}.jsonl.gz", run / "sources")
    spec_path = run.parent / "dedup-test.yaml"
    task_file = run.parent / "quiz.jsonl"
    spec_path.write_text(MIXTURE.format(tasks=task_file))
    task_file.write_text("")
    build_tasks(run, spec_path)
    builtin = fd.TaskIndex.build(task_texts(run / "tasks"), 13)
    news = sorted(read_jsonl_gz(run / "sources" / "lee-background.jsonl.gz"), key=lambda d: d.id)
    clean = [d for d in news if not is_eval_holdout(d.id, SEED, 0.05) and len(d.text.split()) >= 150
             and not builtin.matches(fd.ngram_hashes(fd.word_hashes(fd.words(d.text)), 13, short=False))]
    original, leaked, common = clean[0], clean[1], clean[2]
    copies = {}
    for component in ("web", "forums"):
        copy_id = next(i for i in (f"planted-{component}/{n}" for n in range(100))
                       if not is_eval_holdout(i, SEED, 0.05))
        copy = Document(copy_id, component, f"planted-{component}",
                        perturb(original.text, 0.03, component), None, {"language": "en", "language_score": "1.0"})
        write_jsonl_gz(run / "sources" / f"planted-{component}.jsonl.gz", [copy])
        copies[component] = copy
    lw = leaked.text.split()
    cw = common.text.split()
    rows = [
        {"passage": " ".join(lw[40:100]), "question": "What happened next?", "answer": "x"},  # a real passage
        {"passage": " ".join(cw[10:22]) + " zqa zqb zqc " + " ".join(cw[60:72]), "question": "Who?"},  # 12-word bits
    ]
    task_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run / "curated-1"
    stats = curate(specs.load("mixtures", spec_path), run, out)
    return {"run": run, "spec": spec_path, "out": out, "stats": stats, "original": original, "copies": copies,
            "leaked": leaked, "common": common}


def _outcomes(out: Path) -> dict[str, str | None]:
    """doc id -> drop reason (None: kept), from the job's Parquet outputs."""
    reasons: dict[str, str | None] = {r["id"]: r["drop_reason"] for r in pq.read_table(out / "dropped").to_pylist()}
    for doc_id in pq.read_table(out / "documents", columns=["id"]).column("id").to_pylist():
        reasons[doc_id] = None
    return reasons


def test_planted_copies_are_removed_and_the_original_survives(planted: dict) -> None:
    outcome = _outcomes(planted["out"])
    assert outcome[planted["original"].id] is None
    for copy in planted["copies"].values():
        assert outcome[copy.id] == "near_duplicate", copy.component
    stats = planted["stats"]
    assert stats["components"]["web"]["dropped"]["near_duplicate"] >= 1
    assert stats["components"]["forums"]["dropped"]["near_duplicate"] >= 1
    sizes = {int(k): v for k, v in stats["dedup"]["cluster_sizes"].items()}
    assert any(k >= 3 for k in sizes)  # the original and its two copies: one cluster


def test_both_editions_of_a_play_are_near_duplicates(planted: dict) -> None:
    outcome = _outcomes(planted["out"])
    works: dict[str, list[str]] = {}
    for d in read_jsonl_gz(planted["run"] / "sources" / "shakespeare.jsonl.gz"):
        works.setdefault(d.meta["work"], []).append(d.id)
    pairs = [sorted(ids) for ids in works.values() if len(ids) == 2]
    # pairs where both editions reached dedup (neither held out for eval nor dropped for overlapping one that is)
    checked = [p for p in pairs if all(outcome[i] in (None, "near_duplicate") for i in p)]
    assert len(checked) >= 25
    caught = [p for p in checked if outcome[p[0]] is None and outcome[p[1]] == "near_duplicate"]
    assert len(caught) == len(checked), [p for p in checked if p not in caught]
    books = planted["stats"]["components"]["books"]
    assert set(books["dropped"]) <= {"eval_holdout", "near_duplicate", "contaminated"}  # no rule drops a play


def test_decontamination_drops_the_passage_and_keeps_common_phrases(planted: dict) -> None:
    outcome = _outcomes(planted["out"])
    assert outcome[planted["leaked"].id] == "contaminated"
    assert outcome[planted["common"].id] is None  # shares only 12-word phrases with the task
    dedup = planted["stats"]["dedup"]
    assert dedup["contaminated_by_task"]["quiz"] == 1
    assert dedup["tasks"]["texts"]["quiz"] == 2
    assert dedup["tasks"]["texts"]["heldout"] > 0  # the built-in tasks (RUN/tasks) are checked too


def test_eval_holdout_documents_never_reach_training(planted: dict) -> None:
    outcome = _outcomes(planted["out"])
    held = [i for i in outcome if is_eval_holdout(i, SEED, 0.05)]
    assert held and all(outcome[i] == "eval_holdout" for i in held)
    assert not [i for i, r in outcome.items() if r == "eval_holdout" and i not in held]
    stats = planted["stats"]
    assert sum(c["dropped"].get("eval_holdout", 0) for c in stats["components"].values()) == len(held)
    for c in stats["components"].values():
        assert c["read"] == c["kept"] + sum(c["dropped"].values()) + c["errored"]


def test_dedup_section_for_the_report(planted: dict) -> None:
    dedup = planted["stats"]["dedup"]
    assert dedup["settings"]["implied_threshold"] == pytest.approx((1 / 60) ** (1 / 2), abs=1e-6)
    assert dedup["cc_residual_nodes"] == 0
    top = dedup["largest_clusters"]
    assert 0 < len(top) <= 10 and [c["size"] for c in top] == sorted((c["size"] for c in top), reverse=True)
    assert all(c["snippet"] and c["survivor"] == c["members"][0] for c in top)
    assert sum(dedup["cluster_sizes"].values()) >= len(top)
    from report.mixture import dedup_section

    assert dedup_section(planted["stats"]) == dedup


def test_survivors_do_not_depend_on_workers_or_reruns(planted: dict) -> None:
    reference = tree_digest(planted["out"])
    two = planted["run"] / "curated-2"
    curate(specs.load("mixtures", planted["spec"]), planted["run"], two,
           ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert tree_digest(two) == reference
    again = planted["run"] / "curated-3"
    curate(specs.load("mixtures", planted["spec"]), planted["run"], again)
    assert tree_digest(again) == reference
