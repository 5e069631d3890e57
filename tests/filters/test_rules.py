"""Gopher/C4 heuristic rules: each drops what it should on crafted texts (by its own name, first failing rule
wins), keeps real prose, and stays cheap on huge documents."""

from __future__ import annotations

import time

import pytest

from data_specs.specs import RulesSpec
from filters.normalize import normalize_document
from filters.rules import (
    LANGUAGE_RULES,
    TEXT_RULES,
    count_words,
    language_failure,
    ngram_fractions,
    rule_failure,
    text_stats,
)

RULES = RulesSpec()

# Prose of the kind the rules must keep: distinct sentences, ordinary words, a few stop words.
GOOD = (
    "The river rises in the hills above the old market town and runs north through a wide valley of farms. "
    "In the spring its water is cold and fast, and the fishermen who work the lower reaches wait for the floods "
    "to pass before they set their nets. A stone bridge with seven arches crosses it near the church, built by "
    "the monks of a nearby abbey after an earlier wooden bridge was carried away. Most visitors come to walk "
    "along the banks, where a path follows the water for several miles past mills, meadows and small villages "
    "that have changed little over the centuries.\n"
    "Local historians have collected letters, maps and photographs that show how the valley looked before the "
    "railway arrived. Those records describe busy wharves, a brewery and a tannery that closed long ago."
)

STOPLESS = " ".join(f"Word{i}x" for i in range(80)) + "."
LINES = [s.strip() + "." for s in GOOD.replace("\n", " ").split(".") if s.strip()]


def _lines(prefix: str = "", suffix: str = "") -> str:
    return "\n".join(f"{prefix}{line[:-1]}{suffix}" for line in LINES)


CASES = {
    "min_words": "Too short to be a page.",
    "max_words": (GOOD, RulesSpec(max_words=50)),
    "min_mean_word_length": " ".join(["to be or no"] * 40),
    "max_mean_word_length": " ".join(f"incomprehensibilities{i}" for i in range(80)),
    "max_symbol_word_ratio": GOOD + " " + " ".join(f"#tag{i}" for i in range(30)),
    "min_alpha_word_fraction": GOOD + " " + " ".join(str(1000 + i) for i in range(60)),
    "max_ellipsis_line_fraction": _lines(suffix="..."),
    "max_bullet_line_fraction": _lines(prefix="• "),
    "max_duplicate_line_fraction": GOOD + "\n" + "\n".join(["Subscribe to our newsletter for the latest offers"] * 20),
    "max_top_ngram_fraction": GOOD + " " + " ".join(["of the"] * 60),
    "max_duplicate_ngram_fraction": GOOD.replace("\n", " ") + " " + GOOD.replace("\n", " "),
    "min_stop_words": STOPLESS,
}


def test_good_prose_passes() -> None:
    assert rule_failure(GOOD, RULES) is None
    assert rule_failure(_lines(), RULES) is None


@pytest.mark.parametrize("rule", TEXT_RULES)
def test_each_rule_drops_its_crafted_text(rule: str) -> None:
    case = CASES[rule]
    text, rules = case if isinstance(case, tuple) else (case, RULES)
    assert rule_failure(text, rules) == rule, text_stats(text)


@pytest.mark.parametrize("rule", TEXT_RULES)
def test_thresholds_come_from_the_spec(rule: str) -> None:
    """Loosen the one threshold a crafted text fails, and it passes that rule (it may fail a later one)."""
    loose = {
        "min_words": 1, "max_words": 10**9, "min_mean_word_length": 0.0, "max_mean_word_length": 100.0,
        "max_symbol_word_ratio": 1.0, "min_alpha_word_fraction": 0.0, "max_ellipsis_line_fraction": 1.0,
        "max_bullet_line_fraction": 1.0, "max_duplicate_line_fraction": 1.0, "max_top_ngram_fraction": 1.0,
        "max_duplicate_ngram_fraction": 1.0, "min_stop_words": 0,
    }
    case = CASES[rule]
    text, rules = case if isinstance(case, tuple) else (case, RULES)
    relaxed = RulesSpec(**{**rules.__dict__, rule: loose[rule]})
    assert rule_failure(text, relaxed) != rule


def test_empty_and_whitespace_documents_fail_min_words() -> None:
    assert rule_failure("", RULES) == "min_words"
    assert rule_failure(" \n\n \t ", RULES) == "min_words"


def test_fifty_megabyte_document_is_dropped_cheaply() -> None:
    huge = "All work and no play makes Jack a dull boy. " * 1_140_000
    assert len(huge) > 50_000_000
    start = time.perf_counter()
    assert rule_failure(huge, RULES) == "max_words"
    assert time.perf_counter() - start < 10
    assert rule_failure("x" * 50_000_000, RULES) == "min_words"  # one 50 MB "word"


def test_count_words_matches_split_across_chunk_boundaries() -> None:
    text = ("ab " * 400_000) + "x" * 1_000_000 + " tail\n" + ("word\n" * 300_000)
    assert len(text) > 2 * (1 << 20)
    assert count_words(text) == len(text.split())


def test_language_filter() -> None:
    assert language_failure({"language": "en", "language_score": "0.99"}, RULES) is None
    assert language_failure({"language": "fr", "language_score": "0.99"}, RULES) == "language"
    assert language_failure({"language": "en", "language_score": "0.2"}, RULES) == "min_language_score"
    assert language_failure({}, RULES) == "language"
    assert language_failure({"language": "en"}, RULES) == "min_language_score"
    assert language_failure({"language": "fr", "language_score": "0.9"}, RulesSpec(languages=("en", "fr"))) is None
    assert set(LANGUAGE_RULES) == {"language", "min_language_score"}


def test_ngram_fractions_definitions() -> None:
    words = "a b c d e a b c d e".split()
    lengths = __import__("numpy").array([len(w) for w in words])
    top, dup = ngram_fractions(words, lengths, int(lengths.sum()))
    assert top == pytest.approx(2 * 2 / 10)  # "a b" twice, 2 characters each time
    assert dup == pytest.approx(0.5)  # the second "a b c d e" repeats the first; the first occurrence is free


def test_plays_keep_their_speaker_lines() -> None:
    """A play repeats its speakers' names on short lines: duplicate lines are measured in characters."""
    speakers = ["HAMLET.", "HORATIO.", "MARCELLUS."]
    play = "\n".join(f"{speakers[i % 3]}\n{line}" for i, line in enumerate(LINES * 1))
    assert text_stats(play).duplicate_line_fraction < 0.3
    assert rule_failure(play, RULES) is None


def test_rules_are_pure_and_order_independent() -> None:
    texts = [CASES[r] if isinstance(CASES[r], str) else CASES[r][0] for r in TEXT_RULES] + [GOOD]
    first = [rule_failure(t, RULES) for t in texts]
    assert [rule_failure(t, RULES) for t in reversed(texts)] == first[::-1]
    assert rule_failure(normalize_document(GOOD), RULES) is None
