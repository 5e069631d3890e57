"""Shard streaming: memory-mapped Arrow rows -> deterministic, resumable, prefetched training batches.

Only the `data_specs.shards` schema and manifest are assumed. Rows are read through `pa.memory_map`, so the
dataset never has to fit in memory; a batch gathers just its rows. The order is a pure function of
(seed, batch index): global batch k of epoch e = k // batches_per_epoch takes rows of a seeded permutation of
the split, and data-parallel process p takes its contiguous share of them. So the data position is one integer
(the next batch index), which the checkpoint stores: a resumed run continues with exactly the next batch, and a
rollback can skip batches by moving it forward.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data_specs.errors import GlamkitError
from data_specs.shards import ShardManifest
from train.order import RowPermutation

Batch = dict[str, np.ndarray]  # tokens, segment_ids, positions, targets, weights, components: [rows, seq_len]


def load_manifest(shards_dir: str | Path) -> ShardManifest:
    path = Path(shards_dir) / "manifest.json"
    if not path.is_file():
        raise GlamkitError(f"{shards_dir}: no manifest.json (expected the mixing job's shard folder)")
    return ShardManifest.load(path)


class ShardSplit:
    """The rows of one split ("train" or "validation"), memory-mapped, addressable by global row index."""

    def __init__(self, shards_dir: str | Path, split: str, seq_len: int | None = None):
        self.dir = Path(shards_dir)
        self.manifest = load_manifest(self.dir)
        self.seq_len = seq_len or self.manifest.seq_len
        if self.seq_len > self.manifest.seq_len:
            raise GlamkitError(f"seq_len {self.seq_len} exceeds the shards' {self.manifest.seq_len}")
        # Component names, sorted: per-token component ids index into this tuple (-1 = padding).
        self.components: tuple[str, ...] = tuple(sorted(self.manifest.components))
        self._component_id = {name: i for i, name in enumerate(self.components)}
        self.tables: list[pa.Table] = []
        for name in self.manifest.split_files(split):
            source = pa.memory_map(str(self.dir / name), "r")  # zero-copy: pages load on access
            self.tables.append(pa.ipc.open_file(source).read_all())
        rows = [t.num_rows for t in self.tables]
        self.offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        if not self.tables:
            raise GlamkitError(f"{self.dir}: the manifest lists no {split!r} shards")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def read(self, rows: np.ndarray) -> Batch:
        """The given global rows (any order) as a training batch; -1 rows are all padding."""
        rows = np.asarray(rows, dtype=np.int64)
        n, t, full = len(rows), self.seq_len, self.manifest.seq_len
        out = {k: np.zeros((n, t), np.int32) for k in ("tokens", "segment_ids", "positions")}
        comps = np.full((n, t), -1, np.int32)
        real = np.flatnonzero(rows >= 0)
        shard = np.searchsorted(self.offsets, rows[real], side="right") - 1
        for s in np.unique(shard):
            where = real[shard == s]
            local = pa.array(rows[where] - self.offsets[s], pa.int64())
            table = self.tables[s].take(local)
            for key in ("tokens", "segment_ids", "positions"):
                values = pc.list_flatten(table.column(key)).to_numpy(zero_copy_only=False)
                out[key][where] = values.reshape(len(where), full)[:, :t]
            comps[where] = self._component_ids(table, out["segment_ids"][where])
        return make_batch(out["tokens"], out["segment_ids"], out["positions"], comps)

    def _component_ids(self, table: pa.Table, segment_ids: np.ndarray) -> np.ndarray:
        """Per-token component ids from each row's segment_components (segment k -> entry k-1)."""
        per_row = table.column("segment_components").to_pylist()
        width = max(1, max(len(r) for r in per_row))
        lookup = np.full((len(per_row), width), -1, np.int32)
        for i, names in enumerate(per_row):
            lookup[i, : len(names)] = [self._component_id.get(c, -1) for c in names]
        idx = np.clip(segment_ids - 1, 0, width - 1)
        return np.where(segment_ids > 0, np.take_along_axis(lookup, idx, axis=1), -1).astype(np.int32)


def make_batch(tokens: np.ndarray, segment_ids: np.ndarray, positions: np.ndarray,
               components: np.ndarray) -> Batch:
    """Add next-token targets and loss weights.

    Position t predicts token t+1 only inside one document: the weight is 1 where segment t is real and
    segment t+1 is the same document, so padding, the last position of a row and the jump from one packed
    document to the next never count.
    """
    targets = np.zeros_like(tokens)
    targets[:, :-1] = tokens[:, 1:]
    same = np.zeros(tokens.shape, bool)
    same[:, :-1] = (segment_ids[:, :-1] > 0) & (segment_ids[:, 1:] == segment_ids[:, :-1])
    return {
        "tokens": tokens.astype(np.int32),
        "segment_ids": segment_ids.astype(np.int32),
        "positions": positions.astype(np.int32),
        "targets": targets.astype(np.int32),
        "weights": same.astype(np.float32),
        "components": np.where(same, components, -1).astype(np.int32),
    }


class BatchOrder:
    """Which rows global batch k holds, for this process: a pure function of (seed, k).

    Epoch e's order is a keyed bijection of the rows (train/order.py), evaluated for this process's slice of the
    batch only: no permutation array, whatever the number of rows (1.56B at GLaM's 1.6T tokens).
    """

    def __init__(self, num_rows: int, batch_size: int, seed: int, process_index: int = 0, process_count: int = 1):
        if batch_size % process_count:
            raise GlamkitError(f"batch_size {batch_size} is not divisible by {process_count} processes")
        if num_rows < batch_size:
            raise GlamkitError(f"the training split has {num_rows} rows, fewer than one batch of {batch_size}")
        self.num_rows, self.batch_size, self.seed = num_rows, batch_size, seed
        self.per_process = batch_size // process_count
        self.process_index = process_index
        self.batches_per_epoch = num_rows // batch_size  # the remainder rows wait for the next epoch's shuffle

    def permutation(self, epoch: int) -> RowPermutation:
        return RowPermutation(self.num_rows, self.seed, f"epoch-order/{epoch}")

    def rows(self, k: int) -> np.ndarray:
        epoch, i = divmod(k, self.batches_per_epoch)
        start = i * self.batch_size + self.process_index * self.per_process
        return self.permutation(epoch)(np.arange(start, start + self.per_process))


class BatchStream:
    """Batches k = start, start+1, ... produced ahead by a background thread (`prefetch` deep).

    `position` is the index of the next batch `next()` returns: the value to checkpoint.
    """

    def __init__(self, split: ShardSplit, order: BatchOrder, start: int = 0, prefetch: int = 2):
        self.split, self.order = split, order
        self.position = start
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(start,), daemon=True, name="glamkit-prefetch")
        self._thread.start()

    def batch(self, k: int) -> Batch:
        return self.split.read(self.order.rows(k))

    def _produce(self, k: int) -> None:
        while not self._stop.is_set():
            try:
                item: tuple[int, Batch] | BaseException = (k, self.batch(k))
            except BaseException as exc:  # hand the failure to the consumer
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            k += 1

    def __iter__(self) -> Iterator[tuple[int, Batch]]:
        return self

    def __next__(self) -> tuple[int, Batch]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        k, batch = item
        assert k == self.position, (k, self.position)
        self.position = k + 1
        return k, batch

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def validation_batches(split: ShardSplit, batch_size: int, num_batches: int, process_index: int = 0,
                       process_count: int = 1) -> list[Batch]:
    """`num_batches` fixed batches of validation rows, taken round-robin over mixture components (by each row's
    first document) so that even a small component gets a loss estimate; a short split gives fewer batches,
    padded with empty rows."""
    total = min(num_batches, -(-len(split) // batch_size))
    wanted = total * batch_size
    rows = np.full(wanted, -1, np.int64)
    picked = stratified_rows(split)[:wanted]
    rows[: len(picked)] = picked
    per = batch_size // process_count
    out = []
    for b in range(total):
        start = b * batch_size + process_index * per
        out.append(split.read(rows[start : start + per]))
    return out


def stratified_rows(split: ShardSplit) -> np.ndarray:
    """All rows of the split, interleaved across components: c0's first row, c1's first row, ..., c0's second."""
    first: list[str] = []
    for table in split.tables:
        first += [names[0] if names else "" for names in table.column("segment_components").to_pylist()]
    by_component: dict[str, list[int]] = {}
    for row, name in enumerate(first):
        by_component.setdefault(name, []).append(row)
    queues = [by_component[name] for name in sorted(by_component)]
    out = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
    return np.asarray(out, np.int64)


def unigram_entropy(split: ShardSplit) -> float:
    """Entropy (nats) of the split's non-padding token distribution: the loss of a frequency-only model."""
    counts = np.zeros(0, np.int64)
    for table in split.tables:
        tokens = pc.list_flatten(table.column("tokens")).to_numpy(zero_copy_only=False)
        segs = pc.list_flatten(table.column("segment_ids")).to_numpy(zero_copy_only=False)
        c = np.bincount(tokens[segs > 0])
        counts = np.pad(counts, (0, max(0, len(c) - len(counts))))
        counts[: len(c)] += c
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
