"""What dedup knows of a document (`Features`: no text from here on), computed once per document."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from data_specs.records import read_documents
from filters import dedup as fd
from pipelines.dedup.config import DedupConfig, load_task_index, node_key, node_of

SIG_BITS = 16  # bits of each MinHash value kept for verification (b-bit MinHash; collision bias corrected)


class Features(NamedTuple):
    """One document's dedup features."""

    node: str  # `<component rank><doc id>` (pipelines.dedup.config.node_of)
    exact_key: bytes  # empty: exact dedup off
    band_keys: tuple[int, ...]  # LSH band keys; empty: no shingles, or near dedup off
    signature: bytes  # b-bit MinHash signature for verification; empty: not verified
    task_ngrams: tuple[int, ...]  # the task n-grams it contains (decontamination)
    node_key: int  # the node as a 63-bit integer (pipelines.dedup.config.node_key)


class Featurizer:
    """Signature of one text; the task index is loaded once per worker, on first use."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.index: fd.TaskIndex | None = None

    def __call__(self, node: str, text: str) -> Features:
        if self.index is None:
            self.index = load_task_index(self.config)
        spec = self.config.spec
        p = self.config.params
        toks = fd.words(text)
        base = fd.word_hashes(toks)
        bands: tuple[int, ...] = ()
        sig = b""
        if spec.near:
            sh_base = fd.word_hashes([fd._fold(w) for w in toks]) if spec.fold_spelling else base
            sh = np.unique(fd.ngram_hashes(sh_base, spec.ngram))
            if len(sh):
                full = fd.minhash(sh, p.num_perm, p.seed)
                bands = tuple(fd.band_keys(full, p.bands, p.rows))
                if spec.min_similarity:
                    sig = (full & np.uint32((1 << SIG_BITS) - 1)).astype("<u2").tobytes()
        matched: tuple[int, ...] = ()
        if spec.decontaminate and len(self.index):
            matched = self.index.matches(fd.ngram_hashes(base, self.index.n, short=False))
        exact = fd.exact_key(text) if spec.exact else b""
        return Features(node, exact, bands, sig, matched, node_key(node))


class CuratedFeatures(beam.DoFn):
    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.featurize: Featurizer | None = None

    def process(self, item: Any) -> Iterable[Features]:
        if not item.alive:  # rejected before dedup: not a candidate, not a survivor
            return
        if self.featurize is None:
            self.featurize = Featurizer(self.config)
        yield self.featurize(node_of(self.config.rank_of(item.component), item.doc.id), item.doc.text)


def estimated_similarity(a: bytes, b: bytes) -> float:
    """Jaccard estimate from two b-bit signatures, corrected for chance collisions of the kept bits."""
    x = np.frombuffer(a, dtype="<u2")
    y = np.frombuffer(b, dtype="<u2")
    match = float(np.mean(x == y))
    chance = 2.0**-SIG_BITS
    return max(0.0, (match - chance) / (1.0 - chance))


def read_features(path: str, config: DedupConfig, component_of: dict[str, str]) -> Iterator[Features]:
    """Features of every document of a JSONL(.gz) document file (text dropped as soon as it is hashed)."""
    featurize = Featurizer(config)
    for doc in read_documents(path):
        yield featurize(node_of(config.rank_of(component_of.get(doc.component, doc.component)), doc.id), doc.text)
