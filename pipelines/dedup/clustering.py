"""Exact groups, LSH buckets, verification and the survivor pick: features in, label packs and verdict packs out.
Only packs (pipelines.dedup.packs) or small tuples go through the shuffles."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np

from pipelines.beam.buffered import BufferedDoFn
from pipelines.dedup import packs
from pipelines.dedup.config import EXACT, REASONS
from pipelines.dedup.features import Features, estimated_similarity
from pipelines.dedup.packs import PACK_ENTRIES, PARTITIONS, Pack, PairPacker
from pipelines.dedup.summary import SummaryFn, cluster_record

BAND_SHUFFLES = 4  # shuffles the LSH buckets go through (bands share them round-robin; fewest peak RSS at 16x)


class PackExact(PairPacker):
    """(exact key, node key) of every document, packed by exact key (its first 63 bits)."""

    def pairs(self, f: Features) -> Iterable[tuple[int, int]]:
        if f.exact_key:
            yield int.from_bytes(f.exact_key[:8], "little") >> 1, f.node_key


def exact_labels(kv: tuple[int, Iterable[tuple[bytes, ...]]]) -> Iterator[packs.Rows]:
    """One partition's (exact key, node key) pairs -> (node key, exact key) label packs for the members of every
    group of two or more distinct nodes."""
    keys, nodes = packs.pairs(kv[1])
    if len(keys) == 0:
        return
    rows = np.unique(np.stack([keys, nodes], axis=1), axis=0)
    keys, nodes = rows[:, 0], rows[:, 1]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    shared = np.repeat(sizes, sizes) > 1
    yield packs.pair_rows(nodes[shared], keys[shared])


class PackBands(BufferedDoFn):
    """(band key, node key) of every document with shingles, packed by band key into `shuffles` tagged outputs
    (band b goes to shuffle b mod shuffles; band keys are keyed by their band, so bands can share a table): no stage
    holds more than its share of the buckets, and edges that the bands of one shuffle share come out once."""

    def __init__(self, bands: int, shuffles: int, partitions: int = PARTITIONS, flush_at: int = PACK_ENTRIES
                 ) -> None:
        self.bands = bands
        self.shuffles = shuffles
        self.partitions = partitions
        self.flush_at = max(1, flush_at // bands)  # documents per flush: flush_at (band, node) pairs in all

    def _reset(self) -> None:
        self.keys = [array("Q") for _ in range(self.bands)]
        self.nodes = array("q")

    def process(self, f: Features) -> Iterator[Any]:
        if not f.band_keys:
            return
        self.nodes.append(f.node_key)
        for keys, key in zip(self.keys, f.band_keys, strict=True):
            keys.append(key)
        if len(self.nodes) >= self.flush_at:
            yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        nodes = np.frombuffer(self.nodes, dtype=np.int64).copy()
        bands = [np.frombuffer(k, dtype=np.uint64).view(np.int64).copy() for k in self.keys]
        self._reset()
        for s in range(self.shuffles):
            mine = bands[s :: self.shuffles]
            keys = np.concatenate(mine)
            for pack in packs.pair_packs(keys, np.tile(nodes, len(mine)), self.partitions):
                yield beam.pvalue.TaggedOutput(str(s), pack)


def bucket_edges(kv: tuple[int, Iterable[tuple[bytes, ...]]]) -> Iterator[Any]:
    """One partition of a band shuffle's buckets -> star edges (member, the bucket's smallest member), each distinct
    edge of the partition once."""
    keys, nodes = packs.pairs(kv[1])
    order = np.lexsort((nodes, keys))
    keys, nodes = keys[order], nodes[order]
    fresh = np.ones(len(keys), dtype=bool)
    fresh[1:] = (keys[1:] != keys[:-1]) | (nodes[1:] != nodes[:-1])  # drop repeated (bucket, node) pairs
    keys, nodes = keys[fresh], nodes[fresh]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    root = nodes[np.flatnonzero(starts)][np.cumsum(starts) - 1]  # each pair's bucket minimum (sorted within a bucket)
    member = ~starts
    if member.any():
        yield packs.pair_rows(nodes[member], root[member])


def distinct_edges(kv: tuple[int, Iterable[tuple[bytes, ...]]]) -> Iterator[Any]:
    """A partition's star edges from every band -> each distinct edge once, both ways (what ConnectedComponents
    takes), and their number. Near-identical documents share most bands, so most edges come from several bands
    (eight times over on the benchmark's input): the components work on the distinct ones."""
    a, b = packs.pairs(kv[1])
    if len(a) == 0:
        return
    edges = np.unique(np.stack([a, b], axis=1), axis=0)
    yield packs.pair_rows(*packs.both_ways(edges[:, 0], edges[:, 1]))
    yield beam.pvalue.TaggedOutput("count", ("edges", len(edges)))


class PackNames(BufferedDoFn):
    """(node key, node) of every document, packed by node key: what turns the labels of node keys back into
    node strings, which the survivor rule compares."""

    def __init__(self, partitions: int = PARTITIONS, flush_at: int = PACK_ENTRIES) -> None:
        self.partitions = partitions
        self.flush_at = flush_at

    def _reset(self) -> None:
        self.keys = array("q")
        self.names: list[bytes] = []

    def process(self, f: Features) -> Iterator[Pack]:
        self.keys.append(f.node_key)
        self.names.append(f.node.encode("utf-8", "surrogatepass"))
        if len(self.keys) >= self.flush_at:
            yield from self._flush()

    def _flush(self) -> Iterator[Pack]:
        keys = np.frombuffer(self.keys, dtype=np.int64).copy()
        names = self.names
        self._reset()
        yield from packs.split(keys, [keys], [names], self.partitions)


def _named_labels(kv: tuple[int, dict]) -> Iterator[packs.Rows]:
    """A partition's {label: (node key, label) packs, name: (node key, node) packs} -> (label, node key, node)
    packs by label, one row per labelled node."""
    _, g = kv
    nodes, labels = packs.pairs(g["label"])
    if len(nodes) == 0:
        return
    (keys,), (names,) = packs.columns(g["name"], 1, 1)
    order = np.argsort(keys, kind="stable")
    lo = np.searchsorted(keys[order], nodes, side="left")
    hi = np.searchsorted(keys[order], nodes, side="right")
    out_labels, out_nodes, out_names = [], [], []
    for node, label, a, b in zip(nodes.tolist(), labels.tolist(), lo.tolist(), hi.tolist(), strict=True):
        for k in order[a:b].tolist():  # one name per key, but for duplicate ids or a (vanishingly rare) collision
            out_labels.append(label)
            out_nodes.append(node)
            out_names.append(names[k])
    label_col = np.array(out_labels, dtype=np.int64)
    yield packs.Rows(label_col, (label_col, np.array(out_nodes, dtype=np.int64)), (out_names,))


def _pick_survivors(kv: tuple[int, Iterable[tuple[bytes, ...]]], reason: int) -> Iterator[Any]:
    """A partition's (label, node key, node) packs -> in every group of two or more nodes, the smallest node
    survives (the survivor rule, on node strings) and every other one gets a verdict row (node key, reason, id,
    survivor id). Tagged outputs: "roots" (node key, survivor's node key) of the dropped nodes, "summary" (a
    SummaryFn accumulator of this partition's groups)."""
    (labels, keys), (names,) = packs.columns(kv[1], 2, 1)
    rows = sorted(set(zip(labels.tolist(), names, keys.tolist(), strict=True)))
    summary = SummaryFn()
    acc = summary.create_accumulator()
    dropped: list[int] = []
    roots: list[int] = []
    ids: list[bytes] = []
    details: list[bytes] = []
    for _, group in itertools.groupby(rows, key=lambda r: r[0]):
        members = [(name, key) for _, name, key in group]
        if len(members) < 2:
            continue
        root, root_key = members[0]
        for name, key in members[1:]:
            dropped.append(key)
            roots.append(root_key)
            ids.append(name[2:])
            details.append(root[2:])
        if REASONS[reason] == EXACT:
            summary.add_input(acc, ("exact_size", len(members)))
        else:
            summary.add_input(acc, cluster_record([name.decode("utf-8", "surrogatepass") for name, _ in members]))
    dropped_col = np.array(dropped, dtype=np.int64)
    yield packs.Rows(dropped_col, (dropped_col, np.full(len(dropped), reason, dtype=np.int64)), (ids, details))
    yield packs.pair_rows(dropped_col, np.array(roots, dtype=np.int64), tag="roots")
    yield beam.pvalue.TaggedOutput("summary", ("summary", acc))


class Survivors(beam.PTransform):
    """(label packs of node keys, name packs) -> one survivor per label group: verdict packs (node key, reason, id,
    survivor id) of the other members by node key, plus the tagged outputs of `_pick_survivors`. Only packs go
    through its two shuffles: the name join by node key, then the grouping by label."""

    def __init__(self, label: str, reason: str, partitions: int = PARTITIONS) -> None:
        super().__init__()
        self.label_ = label
        self.reason = REASONS.index(reason)
        self.partitions = partitions

    def expand(self, inputs: tuple[Any, Any]) -> Any:
        labels, names = inputs
        n = self.label_
        return (
            {"label": labels, "name": names}
            | f"{n}NameJoin" >> beam.CoGroupByKey()
            | f"{n}Named" >> beam.ParDo(packs.Packer(_named_labels, partitions=self.partitions))
            | f"{n}Group" >> beam.GroupByKey()
            | f"{n}Pick" >> beam.ParDo(packs.Packer(_pick_survivors, self.reason, partitions=self.partitions))
            .with_outputs("roots", "summary", main="verdicts")
        )


def verify_first(kv: tuple[int, dict]) -> Iterator[tuple[int, tuple[int, bytes]]]:
    """CoGroupByKey by the larger node u: {edges: [m...], sig: [sig_u]} -> (m, (u, sig_u))."""
    u, g = kv
    sigs = list(g["sig"])
    if not sigs:
        return
    for m in sorted(set(g["edges"])):
        yield m, (u, sigs[0])


def verify_second(kv: tuple[int, dict], threshold: float) -> Iterator[tuple[str, Any]]:
    m, g = kv
    sigs = list(g["sig"])
    if not sigs:
        return
    for u, sig_u in sorted(set(g["cands"])):
        yield ("edge", (u, m)) if estimated_similarity(sig_u, sigs[0]) >= threshold else ("rejected", 1)
