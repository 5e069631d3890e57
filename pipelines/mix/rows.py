"""Packing documents into fixed-length training rows, and the global row shuffle: pure numpy, no Beam.

A bucket's documents (already in shuffled order) are concatenated, each followed by EOS, and cut into rows of
`seq_len` tokens; a document longer than what is left of a row continues in the next. Per row: `segment_ids` number
its pieces from 1 (0 = padding), `positions` are each token's offset inside its document (0 at a document's start,
continuing across rows, so pieces of one document can be put back together), and the segment metadata names each
piece's document and component. Only a bucket's last row is padded.

The shuffle puts row g of N at `permute_index(g, N, key)`, a keyed Feistel permutation with cycle walking: every row
gets a distinct place with O(1) memory, so shard contents never depend on workers or bundle order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from data_specs.shards import SHARD_SCHEMA


@dataclass(frozen=True)
class Unit:
    """One copy of one document, as it enters packing: its tokens end with EOS."""

    key: float  # shuffle key: uniform(doc_id#copy, seed, "shuffle")
    doc_id: str
    copy: int
    component: str
    tokens: np.ndarray  # int32


@dataclass(frozen=True)
class Rows:
    """A block of packed rows (numpy, one row per line, read-only) with per-row segment metadata."""

    tokens: np.ndarray  # [n, seq_len] int32
    segment_ids: np.ndarray  # [n, seq_len] int32
    positions: np.ndarray  # [n, seq_len] int32
    doc_ids: list[list[str]]
    components: list[list[str]]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def row(self, i: int) -> tuple:
        return (self.tokens[i], self.segment_ids[i], self.positions[i], self.doc_ids[i], self.components[i])


def pack(units: Sequence[Unit], seq_len: int, pad_id: int) -> Rows:
    """Pack units, in the given order, into rows of seq_len tokens."""
    if not units:
        empty = np.zeros((0, seq_len), np.int32)
        return Rows(empty, empty.copy(), empty.copy(), [], [])
    lengths = np.fromiter((len(u.tokens) for u in units), np.int64, len(units))
    total = int(lengths.sum())
    n_rows = -(-total // seq_len)
    size = n_rows * seq_len
    flat = np.full(size, pad_id, np.int32)
    flat[:total] = np.concatenate([u.tokens for u in units])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    doc_of = np.full(size, -1, np.int64)
    doc_of[:total] = np.repeat(np.arange(len(units)), lengths)
    pos = np.zeros(size, np.int32)
    pos[:total] = np.arange(total) - np.repeat(starts, lengths)
    doc_rows = doc_of.reshape(n_rows, seq_len)
    seg = np.where(doc_rows >= 0, doc_rows - doc_rows[:, 0:1] + 1, 0).astype(np.int32)
    lo_hi = np.stack([doc_rows[:, 0], doc_rows.max(axis=1)], axis=1).tolist()  # documents are contiguous
    doc_ids = [[units[d].doc_id for d in range(lo, hi + 1)] for lo, hi in lo_hi]
    comps = [[units[d].component for d in range(lo, hi + 1)] for lo, hi in lo_hi]
    arrays = (flat.reshape(n_rows, seq_len), seg, pos.reshape(n_rows, seq_len))
    for a in arrays:
        a.flags.writeable = False  # each row goes on as a view: no consumer may change what another one reads
    return Rows(*arrays, doc_ids, comps)


# ------------------------------------------------------------------------------------------------ shuffle
def _round_keys(key: bytes, rounds: int) -> list[bytes]:
    return [hashlib.blake2b(key + bytes([r]), digest_size=16).digest() for r in range(rounds)]


def permute_index(i: int, n: int, key: bytes, rounds: int = 4) -> int:
    """A bijection of [0, n): balanced Feistel on 2h bits (4^h >= n), walking the cycle until inside [0, n)."""
    if not 0 <= i < n:
        raise ValueError(f"index {i} outside [0, {n})")
    half = max(1, (max(n - 1, 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    keys = _round_keys(key, rounds)
    x = i
    while True:
        left, right = x >> half, x & mask
        for k in keys:
            f = int.from_bytes(hashlib.blake2b(right.to_bytes(8, "big"), digest_size=8, key=k).digest(), "big")
            left, right = right, left ^ (f & mask)
        x = (left << half) | right
        if x < n:
            return x


def shuffle_key(seed: int, split: str) -> bytes:
    return hashlib.blake2b(f"glamkit-rows\x1f{split}\x1f{int(seed)}".encode(), digest_size=32).digest()


# ------------------------------------------------------------------------------------------------ arrow
def rows_table(rows: Sequence[tuple]) -> pa.Table:
    """(tokens, segment_ids, positions, doc_ids, components) rows -> a table in SHARD_SCHEMA."""
    n = len(rows)
    seq_len = len(rows[0][0]) if rows else 0
    offsets = pa.array(np.arange(0, (n + 1) * seq_len, seq_len, dtype=np.int32))

    def fixed(col: int) -> pa.Array:
        values = np.concatenate([np.asarray(r[col], np.int32) for r in rows]) if rows else np.zeros(0, np.int32)
        return pa.ListArray.from_arrays(offsets, pa.array(values, pa.int32()))

    def strings(col: int) -> pa.Array:
        lens = np.fromiter((len(r[col]) for r in rows), np.int32, n)
        offs = pa.array(np.concatenate([[0], np.cumsum(lens)]).astype(np.int32))
        return pa.ListArray.from_arrays(offs, pa.array([s for r in rows for s in r[col]], pa.string()))

    return pa.Table.from_arrays([fixed(0), fixed(1), fixed(2), strings(3), strings(4)], schema=SHARD_SCHEMA)


def write_ipc(path: str, table: pa.Table, batch_rows: int = 256) -> None:
    """An Arrow IPC file (uncompressed, so the trainer can memory-map it); same table, same bytes."""
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, SHARD_SCHEMA) as writer:
        writer.write_table(table, max_chunksize=batch_rows)
