"""Dedup and decontamination signatures: pure functions over a document's (normalised) text. No Beam here.

- **exact key**: blake2b-128 of the text with its whitespace collapsed (`exact_key`): documents that differ only in
  spacing or line breaks are exact duplicates.
- **words**: `\\w+` runs of the casefolded text (punctuation and spacing do not matter); `fold_spelling` also maps
  spelling variants onto one form (u/v, i/j/y, doubled letters, a final e: "giue" = "give", "sleepe" = "sleep"),
  so that an early-modern edition and a modernised one of the same text share shingles.
- **shingles**: word n-grams hashed to 64 bits, vectorised (each distinct word is hashed once with blake2b, then
  n consecutive word hashes are combined in numpy and mixed). A text shorter than n words is one shingle of all
  its words: short documents are deduplicated too (an empty one has no shingles and is left to the exact key).
- **MinHash**: `num_perm` hash functions h_i(x) = ((a_i * x + b_i) mod 2^64) >> 32 (multiply-add-shift, 2-universal
  on 32-bit keys; a_i odd, a_i and b_i drawn from blake2b of (seed, i)), min over the shingles, computed as a
  (perm x shingle-chunk) numpy product. The signature is `num_perm` uint32s (bytes: `num_perm * 4`).
- **LSH bands**: `bands x rows = num_perm`; band b's key is blake2b-64 of (b, its rows' values), so two documents are
  candidates iff some band's rows are all equal. P(candidate | Jaccard s) = 1 - (1 - s^rows)^bands, whose midpoint
  is the implied threshold (1/bands)^(1/rows).
- **decontamination n-grams**: the same word hashes, n = 13 by default, every position (not a sample); a task text
  shorter than n words yields none (it is counted, not matched).

Everything is a pure function of (text, parameters): no randomness beyond fixed seeds, no dependence on order.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w+")
_DOUBLE = re.compile(r"(.)\1+")
_FOLD = str.maketrans({"v": "u", "j": "i", "y": "i"})
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_MUL = np.uint64(0x9E3779B97F4A7C15)  # combining n word hashes: h = h * _MUL + w (wrapping)
_CHUNK = 2048  # shingles per MinHash block: num_perm x _CHUNK uint64s (2 MB at 128 permutations)
EMPTY = np.uint32(0xFFFFFFFF)  # a signature of no shingles is all EMPTY


# ------------------------------------------------------------------------------------------------ words
def _fold(word: str) -> str:
    word = _DOUBLE.sub(r"\1", word.translate(_FOLD))
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def words(text: str, fold_spelling: bool = False) -> list[str]:
    """The word sequence shingles and n-grams are built on: `\\w+` runs of the casefolded text."""
    found = _WORD.findall(text.casefold())
    return [_fold(w) for w in found] if fold_spelling else found


def word_hashes(tokens: Sequence[str]) -> np.ndarray:
    """uint64 hash of each word (each distinct word hashed once, with blake2b: stable across processes)."""
    cache: dict[str, int] = {}
    out = np.empty(len(tokens), dtype=np.uint64)
    for i, w in enumerate(tokens):
        h = cache.get(w)
        if h is None:
            h = cache[w] = int.from_bytes(hashlib.blake2b(w.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                          "little")
        out[i] = h
    return out


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (a bijection on uint64 with good avalanche), vectorised."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def ngram_hashes(hashes: np.ndarray, n: int, short: bool = True) -> np.ndarray:
    """uint64 hash of every window of n consecutive word hashes (len - n + 1 of them, in text order). With
    `short`, a sequence shorter than n (but not empty) gives one hash of all its words; otherwise none."""
    m = len(hashes)
    if m < n:
        if not short or m == 0:
            return np.empty(0, dtype=np.uint64)
        n = m
    count = m - n + 1
    h = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _MUL + hashes[j : j + count]
        h = h + np.uint64(n)  # a k-gram of a short text never equals an n-gram of a long one by construction
    return _mix(h)


def shingles(text: str, n: int, fold_spelling: bool = False) -> np.ndarray:
    """The document's distinct word n-gram shingles, as sorted uint64."""
    return np.unique(ngram_hashes(word_hashes(words(text, fold_spelling)), n))


# ------------------------------------------------------------------------------------------------ MinHash
@dataclass(frozen=True)
class MinHashParams:
    num_perm: int = 128
    bands: int = 16
    rows: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows}, must equal num_perm = {self.num_perm}")

    @property
    def threshold(self) -> float:
        return implied_threshold(self.bands, self.rows)


def implied_threshold(bands: int, rows: int) -> float:
    """The Jaccard similarity at which LSH's S-curve is steepest, (1/bands)^(1/rows)."""
    return (1.0 / bands) ** (1.0 / rows)


def candidate_probability(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """P(two documents with this Jaccard similarity share a band key) = 1 - (1 - s^rows)^bands."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=np.float64) ** rows) ** bands


@lru_cache(maxsize=16)
def _perm(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.empty(num_perm, dtype=np.uint64)
    b = np.empty(num_perm, dtype=np.uint64)
    for i in range(num_perm):
        d = hashlib.blake2b(f"glamkit-minhash|{seed}|{i}".encode(), digest_size=16).digest()
        a[i] = int.from_bytes(d[:8], "little") | 1
        b[i] = int.from_bytes(d[8:], "little")
    return a[:, None], b[:, None]


def minhash(shingle_hashes: np.ndarray, num_perm: int = 128, seed: int = 0) -> np.ndarray:
    """MinHash signature (uint32 x num_perm) of a set of uint64 shingle hashes; all EMPTY for an empty set."""
    a, b = _perm(num_perm, seed)
    sig = np.full(num_perm, EMPTY, dtype=np.uint32)
    x = (shingle_hashes & np.uint64(0xFFFFFFFF)).astype(np.uint64)  # 32-bit keys (already mixed)
    with np.errstate(over="ignore"):
        for start in range(0, len(x), _CHUNK):
            block = (a * x[None, start : start + _CHUNK] + b) >> np.uint64(32)
            np.minimum(sig, block.min(axis=1).astype(np.uint32), out=sig)
    return sig


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One 64-bit key per band (as Python ints): equal keys <=> equal rows in that band (w.h.p.)."""
    raw = np.ascontiguousarray(signature, dtype="<u4").tobytes()
    width = rows * 4
    return [int.from_bytes(hashlib.blake2b(raw[i * width : (i + 1) * width], digest_size=8,
                                           person=i.to_bytes(4, "little") + b"band").digest(), "little")
            for i in range(bands)]


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The fraction of equal MinHash values: an unbiased estimate of the Jaccard similarity."""
    return float(np.mean(sig_a == sig_b))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted shingle sets (1.0 for two empty sets)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


# ------------------------------------------------------------------------------------------------ exact
def exact_key(text: str) -> bytes:
    """16-byte key of the normalised text with whitespace collapsed: equal iff the texts are equal up to spacing."""
    return hashlib.blake2b(" ".join(text.split()).encode("utf-8", "surrogatepass"), digest_size=16).digest()


# ------------------------------------------------------------------------------------------------ per document
@dataclass(frozen=True)
class Signature:
    """What dedup needs of one document, without its text: exact key, LSH band keys (empty: no shingles), and the
    task n-gram hashes it contains (decontamination)."""

    exact: bytes
    bands: tuple[int, ...]
    matched: tuple[int, ...] = ()


def signature(text: str, params: MinHashParams, ngram: int, fold_spelling: bool = False,
              task_index: TaskIndex | None = None) -> Signature:
    """A document's Signature: one pass over its words for shingles and (if given) task n-grams."""
    toks = words(text)
    base = word_hashes(toks)
    shingle_base = word_hashes([_fold(w) for w in toks]) if fold_spelling else base
    sh = np.unique(ngram_hashes(shingle_base, ngram))
    keys = tuple(band_keys(minhash(sh, params.num_perm, params.seed), params.bands, params.rows)) if len(sh) else ()
    matched: tuple[int, ...] = ()
    if task_index is not None and len(task_index):
        matched = task_index.matches(ngram_hashes(base, task_index.n, short=False))
    return Signature(exact_key(text), keys, matched)


# ------------------------------------------------------------------------------------------------ tasks
class TaskIndex:
    """The n-grams of eval task texts, for decontamination: sorted uint64 hashes, each with the tasks holding it."""

    def __init__(self, n: int, hashes: np.ndarray, tasks: Sequence[str], owners: Sequence[tuple[int, ...]],
                 texts: dict[str, int], too_short: dict[str, int]) -> None:
        self.n = n
        self.hashes = hashes  # sorted, unique
        self.tasks = tuple(tasks)  # task names, sorted
        self.owners = tuple(owners)  # per hash: indices into tasks
        self.texts = texts  # task -> texts indexed
        self.too_short = too_short  # task -> texts shorter than n words (nothing to match)

    @classmethod
    def build(cls, items: Iterable[tuple[str, str]], n: int) -> TaskIndex:
        per_task: dict[str, list[np.ndarray]] = {}
        texts: dict[str, int] = {}
        too_short: dict[str, int] = {}
        for task, text in items:
            grams = ngram_hashes(word_hashes(words(text)), n, short=False)
            texts[task] = texts.get(task, 0) + 1
            if len(grams) == 0:
                too_short[task] = too_short.get(task, 0) + 1
            per_task.setdefault(task, []).append(grams)
        tasks = sorted(per_task)
        all_h, all_t = [], []
        for t, task in enumerate(tasks):
            h = np.unique(np.concatenate(per_task[task])) if per_task[task] else np.empty(0, np.uint64)
            all_h.append(h)
            all_t.append(np.full(len(h), t, dtype=np.int32))
        if not all_h:
            return cls(n, np.empty(0, np.uint64), (), (), texts, too_short)
        h = np.concatenate(all_h)
        t = np.concatenate(all_t)
        order = np.lexsort((t, h))
        h, t = h[order], t[order]
        uniq, starts = np.unique(h, return_index=True)
        bounds = [*starts.tolist(), len(h)]
        owners = [tuple(int(x) for x in t[bounds[i] : bounds[i + 1]]) for i in range(len(uniq))]
        return cls(n, uniq, tasks, owners, texts, too_short)

    def __len__(self) -> int:
        return len(self.hashes)

    def matches(self, grams: np.ndarray) -> tuple[int, ...]:
        """The distinct task n-gram hashes among `grams`, sorted (as Python ints)."""
        if len(grams) == 0 or len(self.hashes) == 0:
            return ()
        pos = np.searchsorted(self.hashes, grams)
        pos[pos == len(self.hashes)] = 0
        hit = np.unique(grams[self.hashes[pos] == grams])
        return tuple(int(x) for x in hit)

    def tasks_of(self, gram: int) -> tuple[str, ...]:
        i = int(np.searchsorted(self.hashes, np.uint64(gram)))
        if i >= len(self.hashes) or int(self.hashes[i]) != gram:
            return ()
        return tuple(self.tasks[t] for t in self.owners[i])


def jsonl_task_texts(path: str, fields: Sequence[str], name: str | None = None) -> Iterable[tuple[str, str]]:
    """(task, text) from a JSONL task file: the configured fields of each line, joined (lists are joined too)."""
    task = name or Path(path).name.split(".")[0]
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            parts: list[str] = []
            for field in fields:
                value = row.get(field)
                if isinstance(value, str):
                    parts.append(value)
                elif isinstance(value, list):
                    parts.extend(v for v in value if isinstance(v, str))
            if parts:
                yield task, " ".join(parts)


def example_text(ex: dict) -> str:
    """The text of a built-in task example that training text must not overlap: its text, context, target and right
    choice, joined (so an n-gram running from the context into the answer counts)."""
    parts = [ex.get("text"), ex.get("context"), ex.get("target")]
    if "choices" in ex and "label" in ex:
        parts.append(ex["choices"][ex["label"]])
    return " ".join(p for p in parts if p)


def task_folder_texts(root: Path) -> Iterable[tuple[str, str]]:
    """(task, text) for every example of a folder of tasks (`<task>/<split>.jsonl`, as the `tasks` stage writes
    them), each example's `example_text`."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.jsonl")):
            with open(file, encoding="utf-8") as f:
                for line in f:
                    yield folder.name, example_text(json.loads(line))


def document_frequencies(grams: np.ndarray, texts: Iterable[str], n: int) -> np.ndarray:
    """For each of the sorted unique n-gram hashes `grams`, how many of `texts` hold it (each text counted once)."""
    counts = np.zeros(len(grams), dtype=np.int64)
    if len(grams) == 0:
        return counts
    for text in texts:
        g = np.unique(ngram_hashes(word_hashes(words(text)), n, short=False))
        pos = np.searchsorted(grams, g)
        pos[pos == len(grams)] = 0
        counts[pos[grams[pos] == g]] += 1
    return counts
