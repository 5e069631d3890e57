"""Packs: how dedup's shuffles carry many small records as a few large ones.

A pack is `(partition, columns)`: the rows whose partition key is `partition` (mod the number of partitions), stored
column by column: an integer column as the bytes of an int64 array, a text column as two byte strings (the int64
lengths of its UTF-8 values, and the values concatenated). A runner that holds a shuffle in memory (the in-process
one decodes every grouped value into a Python object) then holds a few byte strings per partition instead of an
object per row: a few bytes a row instead of a hundred-odd.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np

from pipelines.beam.buffered import BufferedDoFn

PARTITIONS = 64  # partition keys of a packed shuffle (an integer mod this)
PACK_ENTRIES = 1 << 16  # rows a worker buffers before it emits packs

Pack = tuple[int, tuple[bytes, ...]]


def split(key: np.ndarray, ints: Sequence[np.ndarray], texts: Sequence[Sequence[bytes]], partitions: int
          ) -> Iterator[Pack]:
    """Rows (integer columns, then text columns, all of len(key)) -> one pack per partition of `key`, rows in their
    given order within a pack."""
    if len(key) == 0:
        return
    part = key % partitions
    order = np.argsort(part, kind="stable")
    part = part[order]
    bounds = [0, *(np.flatnonzero(np.diff(part)) + 1).tolist(), len(part)]
    for lo, hi in itertools.pairwise(bounds):
        idx = order[lo:hi]
        cols = [np.asarray(c, dtype=np.int64)[idx].tobytes() for c in ints]
        for text in texts:
            chosen = [text[i] for i in idx.tolist()]
            cols += [np.fromiter(map(len, chosen), np.int64, len(chosen)).tobytes(), b"".join(chosen)]
        yield int(part[lo]), tuple(cols)


def columns(packs: Iterable[tuple[bytes, ...]], ints: int, texts: int = 0
            ) -> tuple[list[np.ndarray], list[list[bytes]]]:
    """Packs' columns (without their partition), concatenated in the packs' order."""
    packs = list(packs)
    int_cols = [np.concatenate([np.frombuffer(p[i], dtype=np.int64) for p in packs]) if packs
                else np.empty(0, np.int64) for i in range(ints)]
    text_cols = []
    for j in range(texts):
        values: list[bytes] = []
        for p in packs:
            lens = np.frombuffer(p[ints + 2 * j], dtype=np.int64)
            blob = p[ints + 2 * j + 1]
            ends = np.cumsum(lens).tolist()
            values += [blob[e - n : e] for e, n in zip(ends, lens.tolist(), strict=True)]
        text_cols.append(values)
    return int_cols, text_cols


def pair_packs(a: np.ndarray, b: np.ndarray, partitions: int) -> Iterator[Pack]:
    """Integer pairs -> packs by the first element."""
    return split(a, [a, b], [], partitions)


def pairs(packs: Iterable[tuple[bytes, ...]]) -> tuple[np.ndarray, np.ndarray]:
    (a, b), _ = columns(packs, 2)
    return a, b


def both_ways(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([a, b]), np.concatenate([b, a])


def pairs_of(pack: Pack) -> Iterator[tuple[int, int]]:
    """A pair pack -> its (first, second) integer pairs."""
    a, b = pairs([pack[1]])
    yield from zip(a.tolist(), b.tolist(), strict=True)


class PairPacker(BufferedDoFn):
    """Integer pairs -> pair packs. A worker buffers pairs in flat arrays (16 bytes a pair, no Python object each)
    and emits packs every `flush_at` pairs and at the end of its bundle."""

    first_type = "q"  # array typecode of the first element ("Q": unsigned 64-bit, viewed as int64 in the pack)
    both_ways = False  # emit (b, a) for every (a, b) too

    def __init__(self, partitions: int = PARTITIONS, flush_at: int = PACK_ENTRIES) -> None:
        self.partitions = partitions
        self.flush_at = flush_at

    def pairs(self, element: Any) -> Iterable[tuple[int, int]]:
        raise NotImplementedError

    def _reset(self) -> None:
        self.a = array(self.first_type)
        self.b = array("q")

    def process(self, element: Any) -> Iterator[Pack]:
        for x, y in self.pairs(element):
            self.a.append(x)
            self.b.append(y)
        if len(self.a) >= self.flush_at:
            yield from self._flush()

    def _flush(self) -> Iterator[Pack]:
        a = np.frombuffer(self.a, dtype=np.uint64 if self.first_type == "Q" else np.int64).view(np.int64).copy()
        b = np.frombuffer(self.b, dtype=np.int64).copy()
        self._reset()
        yield from pair_packs(*(both_ways(a, b) if self.both_ways else (a, b)), self.partitions)


class PackPairs(PairPacker):
    """(a, b) integer pairs -> pair packs."""

    def pairs(self, pair: tuple[int, int]) -> Iterable[tuple[int, int]]:
        yield pair


@dataclass(frozen=True)
class Rows:
    """A batch of rows for `Packer` to pack: the partition key, integer columns, text columns, and the tagged output
    they go to (None: the main one)."""

    key: np.ndarray
    ints: tuple[np.ndarray, ...]
    texts: tuple[Sequence[bytes], ...] = ()
    tag: str | None = None


def pair_rows(a: np.ndarray, b: np.ndarray, tag: str | None = None) -> Rows:
    """Integer pairs, partitioned by the first element."""
    return Rows(a, (a, b), (), tag)


class Packer(BufferedDoFn):
    """`fn(element, *args)` yields Rows (and any other outputs, passed on as they come); the rows are buffered per
    tag across the bundle and packed every `flush_at` rows and at its end. Packing per element instead would cut a
    partition's rows into as many packs as elements: one pack per (input partition, output partition), whose
    overhead outweighs the few rows each holds."""

    def __init__(self, fn: Callable[..., Iterable[Any]], *args: Any, partitions: int = PARTITIONS,
                 flush_at: int = PACK_ENTRIES) -> None:
        self.fn = fn
        self.args = args
        self.partitions = partitions
        self.flush_at = flush_at

    def _reset(self) -> None:
        self.buffered: dict[str | None, list[Rows]] = {}
        self.count = 0

    def process(self, element: Any) -> Iterator[Any]:
        for out in self.fn(element, *self.args):
            if isinstance(out, Rows):
                self.buffered.setdefault(out.tag, []).append(out)
                self.count += len(out.key)
            else:
                yield out
        if self.count >= self.flush_at:
            yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        buffered = self.buffered
        self._reset()
        for tag in sorted(buffered, key=str):
            batches = buffered[tag]
            key = np.concatenate([r.key for r in batches])
            ints = [np.concatenate([r.ints[i] for r in batches]) for i in range(len(batches[0].ints))]
            texts = [[t for r in batches for t in r.texts[j]] for j in range(len(batches[0].texts))]
            for pack in split(key, ints, texts, self.partitions):
                yield pack if tag is None else beam.pvalue.TaggedOutput(tag, pack)
