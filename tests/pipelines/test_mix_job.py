"""The mix job on a small curated layout of real text (Botchan, Lee's news stories, Usenet posts), in seconds: edge
cases the demo run does not reach (no validation split, components with no documents, the plain Bernoulli rule)."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

from data_specs import specs
from data_specs.shards import ShardManifest
from pipelines import mix
from pipelines.tokenizer import build_tokenizer
from tests.pipelines.test_tokenizer import SOURCES, _read


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    import pyarrow.parquet as pq

    from pipelines.curate_core import CURATED_SCHEMA

    run = tmp_path_factory.mktemp("mixjob")
    for source, component in SOURCES.items():
        rows = [{**d.to_dict(), "meta": list(d.meta.items()), "quality_score": None, "drop_reason": None}
                for d in _read(source)]
        out = run / "curated" / "documents" / component
        out.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=CURATED_SCHEMA), out / "part-00000-of-00001.parquet",
                       row_group_size=64)
    build_tokenizer(_spec(), run / "curated", run / "tokenizer")
    return run


def _spec(**mixing):
    return specs.load("mixtures", "demo", {"tokenizer.vocab_size": 1000, "tokenizer.sample_documents": 600,
                                           "mixing.seq_len": 64, "mixing.sequences_per_shard": 100,
                                           "mixing.budget_tokens": 150_000,
                                           **{f"mixing.{k}": v for k, v in mixing.items()}})


def _run(small_run: Path, out: str, **mixing) -> ShardManifest:
    mix.mix(_spec(**mixing), small_run / "curated", small_run / "tokenizer", small_run / out)
    return ShardManifest.load(small_run / out / "manifest.json")


def test_no_validation_split_and_empty_components(small_run: Path) -> None:
    m = _run(small_run, "a", validation_fraction=0.0, budget_tokens=600_000)
    assert m.split_files("validation") == [] and m.split_files("train")
    for c in ("web", "wikipedia", "conversations"):  # in the mixture, no curated documents here
        assert (m.components[c].tokens_available, m.components[c].tokens, m.components[c].epochs) == (0, 0, 0.0)
    books = m.components["books"]  # Botchan alone: one document, repeated whole
    assert books.documents == 1 and books.epochs >= 1
    assert sum(s.tokens for s in m.shards) == sum(c.tokens for c in m.components.values())


def test_a_target_whole_documents_cannot_meet_is_a_warning(small_run: Path) -> None:
    m = _run(small_run, "d")  # books is Botchan alone (~100K tokens) against a target of 30K: 0 or 100K
    warnings = m.extra["warnings"]
    assert any(w.startswith("books: 0 tokens planned for a target of 30,000 (1 documents") for w in warnings)
    assert any(w.startswith("web: 0 tokens planned") and "no curated documents" in w for w in warnings)
    assert not any(w.startswith(("news", "forums")) for w in warnings)


def test_plain_rule_keeps_documents_below_the_fractional_rate(small_run: Path) -> None:
    m = _run(small_run, "b", exact_tokens=False)
    for c in ("news", "forums", "books"):
        rate = m.extra["rates"][c]
        assert rate["threshold"] == pytest.approx(rate["rate"] - math.floor(rate["rate"]))
        assert rate["whole"] == math.floor(rate["rate"])


def test_every_row_has_seq_len_tokens_and_segments_number_from_one(small_run: Path) -> None:
    m = _run(small_run, "c")
    for name in m.split_files("train"):
        with pa.memory_map(str(small_run / "c" / name)) as f:
            t = pa.ipc.open_file(f).read_all()
        for toks, seg, ids in zip(t.column("tokens").to_pylist(), t.column("segment_ids").to_pylist(),
                                  t.column("segment_doc_ids").to_pylist(), strict=True):
            assert len(toks) == len(seg) == m.seq_len
            used = sorted(set(seg) - {0})
            assert used == list(range(1, len(ids) + 1))
