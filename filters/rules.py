"""Heuristic document rules, Gopher / C4 style (Rae et al. 2021, appendix A; Raffel et al. 2020).

Pure functions over a document's (normalised) text: each check returns the name of the first rule the text fails, or
None. A rule's name is the `RulesSpec` knob that rejected it (e.g. "min_words", "max_duplicate_line_fraction"), and it
is the document's `drop_reason` in the curate job, so a drop can always be traced to one threshold of the spec.

Definitions (cheap on purpose: they run on every document, so the heavy parts are C-speed string methods, regexes
and numpy):
- a *word* is a whitespace-separated token (no language-specific tokenizer);
- *lines* are the non-empty lines of the text;
- symbol ratios count '#' and ellipses ('...' or '…') per word, each on its own (Gopher);
- a word is *alphabetic* if it holds at least one letter;
- duplicate lines: characters in lines equal to an earlier line, over characters in all lines (Gopher's
  "duplicate line character fraction"; its line-count variant drops plays, whose speaker names repeat on short lines);
- top n-gram: characters covered by the most frequent word 2-gram (count x its characters) over all word characters;
- duplicate n-grams: characters of words covered by a word 5-gram that repeats an earlier one (the first occurrence
  does not count, as in Gopher and datatrove), over word characters;
- stop words: occurrences of Gopher's eight English stop words ("the", "be", "to", "of", "and", "that", "have",
  "with"), case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from data_specs.specs import RulesSpec

STOP_WORDS: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
BULLETS: tuple[str, ...] = ("•", "●", "○", "▪", "◦", "‣", "∙", "·", "-", "*", "–", "—")
ELLIPSES: tuple[str, ...] = ("...", "…")

# The language ID the sources stage stores in a document's meta (filters/langid.py).
LANGUAGE_KEY = "language"
LANGUAGE_SCORE_KEY = "language_score"

# Drop reasons, in stage order. Everything a curated document can be dropped for is one of these.
LANGUAGE_RULES: tuple[str, ...] = ("language", "min_language_score")
TEXT_RULES: tuple[str, ...] = (
    "min_words",
    "max_words",
    "min_mean_word_length",
    "max_mean_word_length",
    "max_symbol_word_ratio",
    "min_alpha_word_fraction",
    "max_ellipsis_line_fraction",
    "max_bullet_line_fraction",
    "max_duplicate_line_fraction",
    "max_top_ngram_fraction",
    "max_duplicate_ngram_fraction",
    "min_stop_words",
)

_STOP = re.compile(r"(?<!\S)(?:" + "|".join(STOP_WORDS) + r")(?!\S)", re.IGNORECASE)
# A whitespace-delimited token with no letter in it: digits, underscores, punctuation, symbols only.
_NON_ALPHA_WORD = re.compile(r"(?<!\S)(?:[\d_]|[^\w\s])+(?!\S)")
_CHUNK = 1 << 20  # word counting of large texts goes chunk by chunk (no list of millions of words in memory)
_PRIME = np.uint64(0x9E3779B97F4A7C15)


def count_words(text: str) -> int:
    """Whitespace-separated tokens, without materialising them for large texts (a 50 MB document costs ~a second)."""
    if len(text) <= _CHUNK:
        return len(text.split())
    n = 0
    prev_ends_inside_word = False
    for start in range(0, len(text), _CHUNK):
        chunk = text[start : start + _CHUNK]
        n += len(chunk.split())
        if prev_ends_inside_word and not chunk[0].isspace():
            n -= 1  # a word cut in two by the chunk boundary
        prev_ends_inside_word = not chunk[-1].isspace()
    return n


def language_failure(meta: Mapping[str, str], rules: RulesSpec) -> str | None:
    """'language' if the document's language ID is missing or not one of the spec's, 'min_language_score' if the
    ID is too unsure, else None."""
    language = meta.get(LANGUAGE_KEY)
    if not language or language not in rules.languages:
        return "language"
    try:
        score = float(meta.get(LANGUAGE_SCORE_KEY, "nan"))
    except ValueError:
        score = float("nan")
    if not score >= rules.min_language_score:  # a missing or unparsable score fails too
        return "min_language_score"
    return None


@dataclass(frozen=True)
class TextStats:
    """The measurements the rules compare against thresholds (also handy for reports and tuning)."""

    words: int
    mean_word_length: float
    hash_ratio: float
    ellipsis_ratio: float
    alpha_word_fraction: float
    ellipsis_line_fraction: float
    bullet_line_fraction: float
    duplicate_line_fraction: float
    top_ngram_fraction: float
    duplicate_ngram_fraction: float
    stop_words: int


def rule_failure(text: str, rules: RulesSpec) -> str | None:
    """The first heuristic rule `text` fails (in TEXT_RULES order), or None if it passes them all.

    Cheap checks go first and stop early: word-count bounds are decided before any per-word work, so an empty or a
    huge document costs little."""
    n_words = count_words(text)
    if n_words < rules.min_words:
        return "min_words"
    if n_words > rules.max_words:
        return "max_words"
    words = text.split()
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=n_words)
    word_chars = int(lengths.sum())
    mean_len = word_chars / n_words
    if mean_len < rules.min_mean_word_length:
        return "min_mean_word_length"
    if mean_len > rules.max_mean_word_length:
        return "max_mean_word_length"
    ellipses = text.count("...") + text.count("…")
    if text.count("#") / n_words > rules.max_symbol_word_ratio or ellipses / n_words > rules.max_symbol_word_ratio:
        return "max_symbol_word_ratio"
    if 1.0 - len(_NON_ALPHA_WORD.findall(text)) / n_words < rules.min_alpha_word_fraction:
        return "min_alpha_word_fraction"
    lines = [line for line in (raw.strip() for raw in text.split("\n")) if line]
    n_lines = len(lines)
    if sum(line.endswith(ELLIPSES) for line in lines) / n_lines > rules.max_ellipsis_line_fraction:
        return "max_ellipsis_line_fraction"
    if sum(line.startswith(BULLETS) for line in lines) / n_lines > rules.max_bullet_line_fraction:
        return "max_bullet_line_fraction"
    if duplicate_line_fraction(lines) > rules.max_duplicate_line_fraction:
        return "max_duplicate_line_fraction"
    top, dup = ngram_fractions(words, lengths, word_chars)
    if top > rules.max_top_ngram_fraction:
        return "max_top_ngram_fraction"
    if dup > rules.max_duplicate_ngram_fraction:
        return "max_duplicate_ngram_fraction"
    if not _has_stop_words(text, rules.min_stop_words):
        return "min_stop_words"
    return None


def duplicate_line_fraction(lines: Sequence[str]) -> float:
    """Characters in lines that repeat an earlier line, over characters in all lines."""
    seen: set[str] = set()
    dup = total = 0
    for line in lines:
        total += len(line)
        if line in seen:
            dup += len(line)
        else:
            seen.add(line)
    return dup / total if total else 0.0


def ngram_fractions(
    words: Sequence[str], lengths: np.ndarray, word_chars: int, top_n: int = 2, dup_n: int = 5
) -> tuple[float, float]:
    """(characters in the most frequent word `top_n`-gram, characters in words covered by a word `dup_n`-gram
    that repeats an earlier one), each over all word characters. Words become ids in order of first appearance
    (deterministic), n-grams a 64-bit polynomial hash of ids (collisions are ~2^-64 per pair)."""
    n = len(words)
    if n < top_n or word_chars == 0:
        return 0.0, 0.0
    index = {w: i for i, w in enumerate(dict.fromkeys(words))}
    ids = np.fromiter(map(index.__getitem__, words), dtype=np.uint64, count=n)
    top = 0.0
    grams = _ngram_hashes(ids, top_n)
    _, first, counts = np.unique(grams, return_index=True, return_counts=True)
    if counts.max() > 1:
        best = counts.max()
        # among the most frequent n-grams, the one with the most characters (a deterministic choice)
        starts = first[counts == best]
        chars = max(int(lengths[s : s + top_n].sum()) for s in starts)
        top = best * chars / word_chars
    dup = 0.0
    if n >= dup_n:
        grams = _ngram_hashes(ids, dup_n)
        _, first, inverse = np.unique(grams, return_index=True, return_inverse=True)
        repeated = first[inverse] < np.arange(len(grams))  # a repeat of an earlier occurrence (not the first)
        if repeated.any():
            covered = np.zeros(n + 1, dtype=np.int64)
            starts = np.flatnonzero(repeated)
            np.add.at(covered, starts, 1)
            np.add.at(covered, starts + dup_n, -1)
            mask = np.cumsum(covered[:n]) > 0
            dup = float(lengths[mask].sum()) / word_chars
    return float(top), dup


def _ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    m = len(ids) - n + 1
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _PRIME + ids[k : k + m] + np.uint64(1)
    return h


def _has_stop_words(text: str, needed: int) -> bool:
    if needed <= 0:
        return True
    found = 0
    for _ in _STOP.finditer(text):
        found += 1
        if found >= needed:
            return True
    return False


def text_stats(text: str) -> TextStats:
    """Every measurement `rule_failure` uses, computed in full (for inspection and threshold tuning)."""
    words = text.split()
    n = len(words)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=n)
    word_chars = int(lengths.sum())
    lines = [line for line in (raw.strip() for raw in text.split("\n")) if line]
    n_lines = max(len(lines), 1)
    top, dup = ngram_fractions(words, lengths, word_chars)
    return TextStats(
        words=n,
        mean_word_length=word_chars / n if n else 0.0,
        hash_ratio=text.count("#") / n if n else 0.0,
        ellipsis_ratio=(text.count("...") + text.count("…")) / n if n else 0.0,
        alpha_word_fraction=1.0 - len(_NON_ALPHA_WORD.findall(text)) / n if n else 0.0,
        ellipsis_line_fraction=sum(line.endswith(ELLIPSES) for line in lines) / n_lines,
        bullet_line_fraction=sum(line.startswith(BULLETS) for line in lines) / n_lines,
        duplicate_line_fraction=duplicate_line_fraction(lines),
        top_ngram_fraction=top,
        duplicate_ngram_fraction=dup,
        stop_words=len(_STOP.findall(text)),
    )
