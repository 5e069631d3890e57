"""Dedup signatures (filters/dedup.py): shingles, MinHash, band keys, exact keys, task n-grams. Pure and fast."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_specs.errors import SpecError
from data_specs.specs import DedupSpec
from filters import dedup as fd

TEXT = ("The committee met on Tuesday to discuss the budget for the coming year, and after a long debate it agreed "
        "to raise spending on schools while cutting the cost of administration by a tenth.")


def test_implied_threshold_and_s_curve() -> None:
    assert fd.implied_threshold(16, 8) == pytest.approx(0.7071, abs=1e-4)
    assert fd.implied_threshold(40, 3) == pytest.approx(0.2924, abs=1e-4)
    p = fd.candidate_probability(np.array([0.3, 0.707, 0.9]), 16, 8)
    assert p[0] < 0.01 and 0.4 < p[1] < 0.8 and p[2] > 0.99


def test_spec_checks_bands_rows_and_priority(tmp_path) -> None:
    from data_specs import specs

    with pytest.raises(ValueError, match="bands x rows"):
        DedupSpec(num_perm=100, bands=16, rows=8)
    with pytest.raises(ValueError, match="priority"):
        DedupSpec(priority=("wikipedia", "blogs"))
    path = tmp_path / "m.yaml"
    path.write_text("name: m\nseed: 1\ncomponents: {web: {weight: 1.0, sources: [x]}}\n"
                    "dedup: {tasks: [{path: t.jsonl, fields: [question], nmae: q}]}\n")
    with pytest.raises(SpecError, match=r"dedup\.tasks\[0\]\.nmae: unknown key"):
        specs.load("mixtures", path)


def test_minhash_estimates_jaccard() -> None:
    rng = np.random.default_rng(0)
    universe = rng.integers(0, 2**63, 4000, dtype=np.uint64)
    for overlap in (0.2, 0.5, 0.8):
        k = int(2000 * overlap)
        a = np.unique(universe[:2000])
        b = np.unique(np.concatenate([universe[:k], universe[2000 : 4000 - k]]))
        exact = fd.jaccard(a, b)
        est = fd.estimated_jaccard(fd.minhash(fd._mix(a)), fd.minhash(fd._mix(b)))
        assert abs(est - exact) < 3.5 * np.sqrt(exact * (1 - exact) / 128) + 0.01, (overlap, exact, est)


def test_shingles_ignore_case_punctuation_and_spacing() -> None:
    a = fd.shingles(TEXT, 5)
    b = fd.shingles(TEXT.upper().replace(" ", "  \n ").replace(",", " ;"), 5)
    assert np.array_equal(a, b)
    assert len(a) == len(fd.words(TEXT)) - 4


def test_short_texts_still_get_a_shingle() -> None:
    """A document shorter than one shingle is deduplicated too (datatrove skips it): its words are one shingle."""
    assert len(fd.shingles("Thanks a lot", 5)) == 1
    assert len(fd.shingles("", 5)) == 0
    params = fd.MinHashParams()
    a = fd.signature("Thanks a lot!", params, 5)
    b = fd.signature("thanks, a  lot", params, 5)
    c = fd.signature("Thanks a bunch", params, 5)
    assert a.bands == b.bands and len(a.bands) == 16
    assert not set(a.bands) & set(c.bands)
    assert fd.signature("  ", params, 5).bands == ()


def test_exact_key_is_whitespace_insensitive_only() -> None:
    assert fd.exact_key("a b\n\nc") == fd.exact_key(" a  b c ")
    assert fd.exact_key("a b c") != fd.exact_key("a b c.")
    assert len(fd.exact_key(TEXT)) == 16


def test_fold_spelling_maps_folio_spellings() -> None:
    folio = "To sleepe, perchance to Dreame; I, there's the rub, how smart a lash that speech doth giue"
    modern = "To sleep, perchance to dream; ay, there's the rub, how smart a lash that speech doth give"
    plain = fd.jaccard(fd.shingles(folio, 3), fd.shingles(modern, 3))
    folded = fd.jaccard(fd.shingles(folio, 3, True), fd.shingles(modern, 3, True))
    assert folded > plain + 0.25
    assert fd.words("Sleepe giue vgly", fold_spelling=True) == fd.words("sleep give ugly", fold_spelling=True)


def test_band_keys_are_stable_and_distinct_per_band() -> None:
    params = fd.MinHashParams()
    s1 = fd.signature(TEXT, params, 5)
    s2 = fd.signature(TEXT, params, 5)
    assert s1 == s2
    assert len(set(s1.bands)) == 16
    same_rows = np.zeros(128, dtype=np.uint32)
    assert len(set(fd.band_keys(same_rows, 16, 8))) == 16  # equal rows in two bands are still two keys


def test_task_index_matches_13_grams_only(tmp_path) -> None:
    passage = " ".join(f"w{i}" for i in range(30))
    path = tmp_path / "quiz.jsonl"
    path.write_text(json.dumps({"question": passage, "answers": ["x"], "id": 3}) + "\n"
                    + json.dumps({"question": "too short to match"}) + "\n")
    items = list(fd.jsonl_task_texts(str(path), ("question",), None))
    assert [t for t, _ in items] == ["quiz", "quiz"]
    index = fd.TaskIndex.build(items, 13)
    assert index.too_short == {"quiz": 1} and index.texts == {"quiz": 2} and len(index) == 18

    def grams(text: str) -> np.ndarray:
        return fd.ngram_hashes(fd.word_hashes(fd.words(text)), 13, short=False)

    holds = "intro words " + " ".join(f"w{i}" for i in range(5, 20)) + " outro"
    twelve = "intro " + " ".join(f"w{i}" for i in range(5, 17)) + " outro"
    hits = index.matches(grams(holds))
    assert len(hits) == 3 and index.tasks_of(hits[0]) == ("quiz",)
    assert index.matches(grams(twelve)) == ()
