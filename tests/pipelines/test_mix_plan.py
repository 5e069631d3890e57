"""The mixing job's pure parts: rates and thresholds, copies, the validation split, packing, the row permutation,
Arrow rows, and planning mode (GLaM's table 3 at 600B)."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pytest

from data_specs import specs
from data_specs.errors import GlamkitError
from data_specs.hashing import uniform
from data_specs.shards import SHARD_SCHEMA
from pipelines.mix.rates import (
    MIX_PURPOSE,
    VALIDATION,
    calibrate_threshold,
    component_rate,
    copies,
    split_of,
)
from pipelines.mix.rows import Unit, pack, permute_index, rows_table, shuffle_key, write_ipc
from report.plan import format_epochs, parse_tokens, plan_report, save_plan


def _docs(n: int, seed: int = 0, big: int = 5000) -> list[tuple[str, int]]:
    rnd = random.Random(seed)
    return [(f"src/{i:05d}", rnd.randint(1, big)) for i in range(n)]


# ------------------------------------------------------------------------------------------------ planning
def test_glam_plan_at_600b_gives_the_papers_epochs(tmp_path) -> None:
    data, table = plan_report(specs.load("mixtures", "glam"), "600B")
    epochs = {r["component"]: format_epochs(r["epochs"]) for r in data["components"]}
    assert epochs == {"wikipedia": "12.0", "web": "1.76", "conversations": "0.97", "books": "0.31",
                      "forums": "0.049", "news": "0.018"}
    assert [r["component"] for r in data["components"]] == ["web", "wikipedia", "conversations", "forums", "books",
                                                              "news"]  # table 3's order, from the spec
    assert "| wikipedia | 3 | 0.06 | 36 | 12.0 |" in table
    json_path, md_path = save_plan(data, table, tmp_path, "glam-600b")
    assert md_path.read_text() == table and '"budget_tokens": 600000000000' in json_path.read_text()


def test_plan_refuses_a_component_without_size() -> None:
    with pytest.raises(GlamkitError, match="tokens_b"):
        plan_report(specs.load("mixtures", "demo"), "1B")


@pytest.mark.parametrize(("text", "tokens"), [("600B", 600 * 10**9), ("1.6T", 1_600_000_000_000), ("4M", 4_000_000),
                                              ("4000000", 4_000_000), ("2.5k", 2500)])
def test_parse_tokens(text: str, tokens: int) -> None:
    assert parse_tokens(text) == tokens


def test_parse_tokens_rejects_nonsense() -> None:
    with pytest.raises(GlamkitError):
        parse_tokens("lots")


# ------------------------------------------------------------------------------------------------ rates
def test_calibrated_threshold_selects_a_prefix_in_uniform_order_closest_to_the_target() -> None:
    rnd = random.Random(1)
    docs = [(rnd.random(), rnd.randint(1, 1000)) for _ in range(300)]
    target = 0.37 * sum(n for _, n in docs)
    t = calibrate_threshold(docs, target)
    chosen = sum(n for u, n in docs if u < t)
    assert abs(chosen - target) <= max(n for _, n in docs) / 2
    # it is the best prefix: no other cut point in uniform order is closer
    ordered = sorted(docs)
    prefixes = np.concatenate([[0], np.cumsum([n for _, n in ordered])])
    assert abs(chosen - target) == pytest.approx(np.abs(prefixes - target).min())


@pytest.mark.parametrize("weight", [0.02, 0.3, 0.9])
def test_component_rate_hits_the_target_within_half_a_document(weight: float) -> None:
    docs = _docs(400)
    budget = 600_000
    r = component_rate(docs, weight, budget, seed=7)
    assert r.whole == math.floor(r.rate)
    assert abs(r.planned_tokens - weight * budget) <= max(n for _, n in docs) / 2
    got = [copies(uniform(d, 7, MIX_PURPOSE), r.whole, r.threshold) for d, _ in docs]
    assert set(got) <= {math.floor(r.rate), math.ceil(r.rate)}
    assert sum(c * n for c, (_, n) in zip(got, docs, strict=True)) == r.planned_tokens


def test_plain_rule_uses_the_fractional_rate_as_threshold() -> None:
    r = component_rate(_docs(50), 0.5, 300_000, seed=3, exact=False)
    assert r.threshold == pytest.approx(r.rate - math.floor(r.rate))


def test_a_document_keeps_its_fate_whatever_else_is_in_the_component() -> None:
    """Plain rule: keep iff uniform(doc_id, seed, 'mix') < rate depends on the document alone."""
    docs = _docs(200)
    full = component_rate(docs, 0.1, 200_000, seed=5, exact=False)
    for d, _ in docs[:50]:
        assert copies(uniform(d, 5, MIX_PURPOSE), full.whole, full.threshold) == (
            1 if uniform(d, 5, MIX_PURPOSE) < full.rate else 0)


def test_validation_split_is_by_document_and_about_the_fraction() -> None:
    ids = [f"s/{i}" for i in range(20000)]
    val = [d for d in ids if split_of(d, 11, 0.05) == VALIDATION]
    assert 0.04 < len(val) / len(ids) < 0.06
    assert val == [d for d in ids if split_of(d, 11, 0.05) == VALIDATION]  # a pure function of the id
    assert not [d for d in ids if split_of(d, 11, 0.0) == VALIDATION]


# ------------------------------------------------------------------------------------------------ packing
def _units(lengths: list[int], seed: int = 0) -> list[Unit]:
    rnd = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(lengths):
        toks = rnd.integers(3, 1000, n).astype(np.int32)
        toks[-1] = 1  # EOS ends every unit
        out.append(Unit(float(i), f"d{i}", 0, "books" if i % 2 else "news", toks))
    return out


def test_pack_neither_loses_nor_duplicates_a_token() -> None:
    units = _units([5, 300, 1, 17, 64, 64, 900, 2])
    rows = pack(units, 64, pad_id=0)
    assert rows.tokens.shape == (math.ceil(sum(len(u.tokens) for u in units) / 64), 64)
    pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for r in range(len(rows)):
        toks, seg, pos, ids, comps = rows.row(r)
        assert list(np.unique(seg[seg > 0])) == list(range(1, len(ids) + 1))
        assert np.all(np.diff(seg[seg > 0]) >= 0)
        for k, doc in enumerate(ids, 1):
            pieces.setdefault(doc, []).append((pos[seg == k], toks[seg == k]))
            assert comps[k - 1] == next(u.component for u in units if u.doc_id == doc)
    for u in units:
        pos = np.concatenate([p for p, _ in pieces[u.doc_id]])
        toks = np.concatenate([t for _, t in pieces[u.doc_id]])
        assert np.array_equal(pos, np.arange(len(u.tokens)))  # positions continue across rows
        assert np.array_equal(toks, u.tokens)


def test_pack_pads_only_the_last_row() -> None:
    rows = pack(_units([10, 20, 5]), 16, pad_id=0)
    assert (rows.segment_ids[:-1] > 0).all()
    assert (rows.segment_ids[-1] == 0).sum() == 16 * 3 - 35
    assert (rows.tokens[-1][rows.segment_ids[-1] == 0] == 0).all()


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 1000, 4097])
def test_permute_index_is_a_bijection(n: int) -> None:
    key = shuffle_key(3, "train")
    out = [permute_index(i, n, key) for i in range(n)]
    assert sorted(out) == list(range(n))
    if n >= 100:
        assert out != list(range(n))
        assert out != [permute_index(i, n, shuffle_key(4, "train")) for i in range(n)]


def test_rows_table_schema_and_bytes_are_stable(tmp_path) -> None:
    rows = pack(_units([100, 40, 3]), 32, pad_id=0)
    table = rows_table([rows.row(r) for r in range(len(rows))])
    assert table.schema.equals(SHARD_SCHEMA)
    write_ipc(str(tmp_path / "a.arrow"), table)
    write_ipc(str(tmp_path / "b.arrow"), rows_table([rows.row(r) for r in range(len(rows))]))
    assert (tmp_path / "a.arrow").read_bytes() == (tmp_path / "b.arrow").read_bytes()
    with pa.memory_map(str(tmp_path / "a.arrow")) as f:
        back = pa.ipc.open_file(f).read_all()
    assert back.column("segment_doc_ids").to_pylist() == [r[3] for r in (rows.row(i) for i in range(len(rows)))]
