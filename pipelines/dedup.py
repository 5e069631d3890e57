"""Dedup and decontamination as Beam transforms: thin glue over `filters/dedup.py`.

    documents (text)                          one pass per document: exact key, MinHash band keys, b-bit signature,
      -> Signatures (no text from here on)    task n-grams it contains (filters.dedup.signature)
      -> exact groups        GroupByKey(exact key)          -> exact_duplicate: every member but the group's first
      -> LSH buckets         (band key, node key) pairs packed per partition, GroupByKey(partition)
                                                            -> star edges (member, bucket's smallest member)
      -> verification        CoGroupByKey(node), twice      -> edges whose estimated Jaccard >= min_similarity
      -> connected components: alternating large-star / small-star rounds (Kiveris et al. 2014), a convergence
         check, and a union-find over the (normally empty) residual -> a label per node key
      -> survivors            CoGroupByKey(node key) with the node names, GroupByKey(label)
                                                            -> a label per node: its component's first node
      -> near_duplicate: every node whose label is not itself
      -> decontamination: task n-grams found in more than `decontaminate_common_documents` distinct clusters are
         common phrases (ignored); a surviving document holding any other task n-gram is `contaminated`
      -> verdicts: doc id -> drop reason (dropped documents only), joined back to the documents by id as a side
         input (the text never goes through a shuffle)

"First" is the survivor rule, which depends on nothing but the documents: a node is the string
`<component rank><doc id>`, the rank being the component's place in `DedupSpec.priority`, so the smallest node of a
cluster is its highest-priority component's smallest id. Shuffles carry nodes, 64-bit keys and signature bytes; from
the LSH buckets to the connected components, nodes travel as 63-bit integer keys (`node_key`) and the LSH pairs as
packed arrays, so the footprint of a shuffle held in memory (the in-process runner's) is a few bytes per pair.

The curate job calls `dedup_stage` (its DEDUP_STAGES hook); `dedup_files_job` runs the same transforms over
document files on their own (bench/dedup.py), writing the survivors' documents by re-reading the files.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np

from data_specs.records import COMPONENTS
from data_specs.specs import DedupSpec
from filters import dedup as fd
from pipelines.buffered import BufferedDoFn

log = logging.getLogger("glamkit.dedup")

EXACT, NEAR, CONTAMINATED = "exact_duplicate", "near_duplicate", "contaminated"
REASON_ORDER = {EXACT: 0, NEAR: 1, CONTAMINATED: 2}
CC_ROUNDS = 4  # large-star + small-star pairs; what is left unconverged after them goes to a union-find
TOP_CLUSTERS = 10
CLUSTER_MEMBERS = 20  # ids listed per reported cluster
SNIPPET_CHARS = 300
SIG_BITS = 16  # bits of each MinHash value kept for verification (b-bit MinHash; collision bias corrected)
PARTITIONS = 64  # shuffle keys of the packed LSH, connected-components and name-join stages (an integer mod this)
PACK_ENTRIES = 1 << 16  # pairs a worker packs into one shuffle record


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class TaskSource:
    """Where decontamination's task texts come from: a built-in tasks folder (filters.dedup.task_folder_texts), or a
    JSONL file whose `fields` hold the text."""

    path: str
    fields: tuple[str, ...] = ()  # empty: a built-in tasks folder
    name: str | None = None


@dataclass(frozen=True)
class DedupConfig:
    """What the dedup transforms need (picklable: it travels to the workers)."""

    spec: DedupSpec
    task_sources: tuple[TaskSource, ...] = ()

    @property
    def params(self) -> fd.MinHashParams:
        return fd.MinHashParams(self.spec.num_perm, self.spec.bands, self.spec.rows)

    @property
    def min_similarity(self) -> float | None:
        return self.spec.min_similarity

    def rank_of(self, component: str) -> int:
        return component_ranks(self.spec.priority).get(component, len(COMPONENTS))


def component_ranks(priority: Sequence[str]) -> dict[str, int]:
    """The survivor order: the spec's priority list, then the components it does not name (in COMPONENTS order)."""
    order = [*priority, *(c for c in COMPONENTS if c not in priority)]
    return {c: i for i, c in enumerate(order)}


def node_of(rank: int, doc_id: str) -> str:
    return f"{rank:02d}{doc_id}"


def id_of(node: str) -> str:
    return node[2:]


def node_key(node: str) -> int:
    """A node as a 63-bit integer (keyed blake2b): what the LSH buckets, verification and connected components work
    on, so their shuffles carry fixed-size integers, not strings. Labels go back to node strings (and the survivor
    rule) afterwards; two nodes sharing a key (~n^2 / 2^64) would only merge their clusters."""
    digest = hashlib.blake2b(node.encode("utf-8", "surrogatepass"), digest_size=8, person=b"glamkit-node").digest()
    return int.from_bytes(digest, "little") >> 1


def config_for(spec: DedupSpec, task_dir: str | Path | None) -> DedupConfig:
    """Builtin tasks (RUN/tasks, when it exists) plus the spec's task files."""
    sources = []
    if spec.decontaminate:
        if spec.builtin_tasks and task_dir is not None and Path(task_dir).is_dir():
            sources.append(TaskSource(str(task_dir)))
        for t in spec.tasks:
            sources.append(TaskSource(t.path, tuple(t.fields), t.name))
    return DedupConfig(spec, tuple(sources))


def load_task_index(config: DedupConfig) -> fd.TaskIndex:
    def items() -> Iterator[tuple[str, str]]:
        for src in config.task_sources:
            if src.fields:
                yield from fd.jsonl_task_texts(src.path, src.fields, src.name)
            else:
                yield from fd.task_folder_texts(Path(src.path))

    return fd.TaskIndex.build(items(), config.spec.decontaminate_ngram)


def describe(spec: DedupSpec) -> str:
    """One line for the log and the console: the LSH setting and its implied similarity threshold."""
    thr = fd.implied_threshold(spec.bands, spec.rows)
    verify = f", verified at estimated Jaccard >= {spec.min_similarity:.2f}" if spec.min_similarity else ""
    return (f"dedup: exact {'on' if spec.exact else 'off'}; near {'on' if spec.near else 'off'}: "
            f"word {spec.ngram}-gram shingles{' (spelling folded)' if spec.fold_spelling else ''}, "
            f"{spec.num_perm} permutations = "
            f"{spec.bands} bands x {spec.rows} rows, implied Jaccard threshold (1/{spec.bands})^(1/{spec.rows}) = "
            f"{thr:.3f}{verify}; decontamination {'on' if spec.decontaminate else 'off'} "
            f"({spec.decontaminate_ngram}-grams)")


# ------------------------------------------------------------------------------------------------ signatures
# A document's record through the shuffles: (node, exact key, band keys, b-bit signature bytes, task n-grams).
Features = tuple[str, bytes, tuple[int, ...], bytes, tuple[int, ...]]


class _Featurizer:
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
        return node, exact, bands, sig, matched


class _CuratedFeatures(beam.DoFn):
    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.featurize: _Featurizer | None = None

    def process(self, item: Any) -> Iterable[Features]:
        if not item.alive:  # rejected before dedup: not a candidate, not a survivor
            return
        if self.featurize is None:
            self.featurize = _Featurizer(self.config)
        yield self.featurize(node_of(self.config.rank_of(item.component), item.doc.id), item.doc.text)


def estimated_similarity(a: bytes, b: bytes) -> float:
    """Jaccard estimate from two b-bit signatures, corrected for chance collisions of the kept bits."""
    x = np.frombuffer(a, dtype="<u2")
    y = np.frombuffer(b, dtype="<u2")
    match = float(np.mean(x == y))
    chance = 2.0**-SIG_BITS
    return max(0.0, (match - chance) / (1.0 - chance))


# ------------------------------------------------------------------------------------------------ clustering
def _exact_groups(kv: tuple[bytes, Iterable[str]]) -> Iterator[tuple[str, Any]]:
    nodes = sorted(set(kv[1]))
    if len(nodes) > 1:
        yield "size", len(nodes)
        for node in nodes[1:]:
            yield "drop", (node, nodes[0])


# Packed pair lists: (partition, (int64 bytes of the first elements, int64 bytes of the second)), partitioned by the
# first element mod PARTITIONS. The LSH buckets, the connected components and the name join shuffle these: a few
# large byte strings per partition, where a (node, node) record per edge would cost a hundred-odd bytes each in a
# shuffle the in-process runner holds in memory.
Pack = tuple[int, tuple[bytes, bytes]]


def _packs(a: np.ndarray, b: np.ndarray, partitions: int) -> Iterator[Pack]:
    if len(a) == 0:
        return
    part = a % partitions
    order = np.argsort(part, kind="stable")
    a, b, part = a[order], b[order], part[order]
    bounds = [0, *(np.flatnonzero(np.diff(part)) + 1).tolist(), len(a)]
    for lo, hi in itertools.pairwise(bounds):
        yield int(part[lo]), (a[lo:hi].tobytes(), b[lo:hi].tobytes())


def _unpack(packs: Iterable[tuple[bytes, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    packs = list(packs)
    if not packs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return (np.concatenate([np.frombuffer(x, dtype=np.int64) for x, _ in packs]),
            np.concatenate([np.frombuffer(y, dtype=np.int64) for _, y in packs]))


def _both_ways(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([a, b]), np.concatenate([b, a])


def _adjacency(packs: Iterable[tuple[bytes, bytes]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct directed pairs (u, v) sorted by u then v; each row's group index; each group's first row."""
    a, b = _unpack(packs)
    if len(a) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, empty
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    u, v = pairs[:, 0], pairs[:, 1]
    starts = np.ones(len(u), dtype=bool)
    starts[1:] = u[1:] != u[:-1]
    return u, v, np.cumsum(starts) - 1, np.flatnonzero(starts)


class _PairPacker(BufferedDoFn):
    """Integer pairs -> packs. A worker buffers pairs in flat arrays (16 bytes a pair, no Python object each) and
    emits packs every `flush_at` pairs and at the end of its bundle."""

    first_type = "q"  # array typecode of the first element ("Q": unsigned 64-bit, viewed as int64 in the pack)
    both_ways = False  # emit (b, a) for every (a, b) too

    def __init__(self, partitions: int = PARTITIONS, flush_at: int = PACK_ENTRIES) -> None:
        self.partitions = partitions
        self.flush_at = flush_at

    def pairs(self, element: Any) -> Iterable[tuple[int, int]]:
        raise NotImplementedError

    def start_bundle(self) -> None:
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
        self.start_bundle()
        yield from _packs(*(_both_ways(a, b) if self.both_ways else (a, b)), self.partitions)


class _PackBands(_PairPacker):
    """(band key, node key) of every document: the LSH shuffle's records are a few large byte strings per
    partition of band keys, not a (key, node) object per band per document."""

    first_type = "Q"

    def pairs(self, f: Features) -> Iterable[tuple[int, int]]:
        if f[2]:
            nk = node_key(f[0])
            for band in f[2]:
                yield band, nk


class _PackEdges(_PairPacker):
    """Undirected edges (a, b) -> packs of both directions."""

    both_ways = True

    def pairs(self, edge: tuple[int, int]) -> Iterable[tuple[int, int]]:
        yield edge


def _large_star(kv: tuple[int, Iterable[tuple[bytes, bytes]]], partitions: int) -> Iterator[Pack]:
    """Every neighbour v > u of a node u links to m(u) = min(N(u) + u) (Kiveris et al.), on a partition's pairs."""
    u, v, gid, first = _adjacency(kv[1])
    if len(u) == 0:
        return
    m = np.minimum(np.minimum.reduceat(v, first), u[first])[gid]
    sel = v > u
    yield from _packs(*_both_ways(v[sel], m[sel]), partitions)


def _small_star(kv: tuple[int, Iterable[tuple[bytes, bytes]]], partitions: int) -> Iterator[Pack]:
    """Every node of {v in N(u): v < u} + u links to that set's minimum."""
    u, v, gid, first = _adjacency(kv[1])
    if len(u) == 0:
        return
    m = np.minimum.reduceat(np.where(v < u, v, u), first)
    sel = (v < u) & (v != m[gid])
    own = u[first] != m
    src = np.concatenate([v[sel], u[first][own]])
    dst = np.concatenate([m[gid][sel], m[own]])
    yield from _packs(*_both_ways(src, dst), partitions)


def _parents(kv: tuple[int, Iterable[tuple[bytes, bytes]]]) -> Iterator[Pack]:
    """(node, parent = min(N(u) + u)) for a partition's nodes, as one pack."""
    u, v, _, first = _adjacency(kv[1])
    if len(u):
        yield kv[0], (u[first].tobytes(), np.minimum(np.minimum.reduceat(v, first), u[first]).tobytes())


def _parent_claims(kv: tuple[int, Iterable[tuple[bytes, bytes]]], partitions: int) -> Iterator[Pack]:
    """(node, parent of a neighbour or of itself): after convergence every node hears one parent."""
    u, v, gid, first = _adjacency(kv[1])
    if len(u) == 0:
        return
    p = np.minimum(np.minimum.reduceat(v, first), u[first])
    yield from _packs(np.concatenate([u[first], v]), np.concatenate([p, p[gid]]), partitions)


def _residual(kv: tuple[int, Iterable[tuple[bytes, bytes]]]) -> Iterator[tuple[int, int]]:
    """(node, claimed parent) for every node that hears more than one parent (unconverged components)."""
    t, p, _, first = _adjacency(kv[1])
    if len(t) == 0:
        return
    sizes = np.diff([*first.tolist(), len(t)])
    for g in np.flatnonzero(sizes > 1):
        for k in range(first[g], first[g] + sizes[g]):
            yield int(t[k]), int(p[k])


def _final_labels(pack: Pack, roots: dict[int, int]) -> Pack:
    part, (nodes, parents) = pack
    if not roots:
        return pack
    labels = np.frombuffer(parents, dtype=np.int64).copy()
    for i, parent in enumerate(labels.tolist()):
        if parent in roots:
            labels[i] = roots[parent]
    return part, (nodes, labels.tobytes())


def labels_of(pack: Pack) -> Iterator[tuple[int, int]]:
    """A label pack -> (node, label) pairs."""
    nodes, labels = _unpack([pack[1]])
    yield from zip(nodes.tolist(), labels.tolist(), strict=True)


class _UnionFind(beam.CombineFn):
    """Union-find (root = smallest node) over the residual pairs of unconverged components: empty when the rounds
    converged, which they do on every graph measured here; the result does not depend on merge order."""

    def create_accumulator(self) -> list:
        return []

    def add_input(self, acc: list, pair: tuple[str, str]) -> list:
        acc.append(pair)
        return acc

    def merge_accumulators(self, accs: Iterable[list]) -> list:
        return [p for acc in accs for p in acc]

    def extract_output(self, acc: list) -> dict[str, str]:
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            root = x
            while parent.get(root, root) != root:
                root = parent[root]
            while parent.get(x, x) != root:
                parent[x], x = root, parent[x]
            return root

        for a, b in acc:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        return {x: find(x) for x in sorted(parent)}


def _bucket_edges(kv: tuple[int, Iterable[tuple[bytes, bytes]]]) -> Iterator[tuple[int, int]]:
    """One partition's LSH buckets -> star edges (member, bucket's smallest member), each distinct edge once."""
    keys, nodes = _unpack(kv[1])
    order = np.lexsort((nodes, keys))
    keys, nodes = keys[order], nodes[order]
    fresh = np.ones(len(keys), dtype=bool)
    fresh[1:] = (keys[1:] != keys[:-1]) | (nodes[1:] != nodes[:-1])  # drop repeated (bucket, node) pairs
    keys, nodes = keys[fresh], nodes[fresh]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    first = np.flatnonzero(starts)
    root = nodes[first][np.cumsum(starts) - 1]  # each pair's bucket minimum (nodes are sorted within a bucket)
    member = ~starts
    edges = np.unique(np.stack([nodes[member], root[member]], axis=1), axis=0) if member.any() else ()
    for a, b in edges:
        yield int(a), int(b)


class _PackNames(BufferedDoFn):
    """(node key, node) of every document with band keys (any of them can end up in a cluster), packed per partition
    of the key: keys, UTF-8 lengths and the names' bytes, three byte strings per pack."""

    def __init__(self, partitions: int = PARTITIONS, flush_at: int = PACK_ENTRIES) -> None:
        self.partitions = partitions
        self.flush_at = flush_at

    def start_bundle(self) -> None:
        self.keys = array("q")
        self.lens = array("q")
        self.blob = bytearray()

    def process(self, f: Features) -> Iterator[tuple[int, tuple[bytes, bytes, bytes]]]:
        if not f[2]:
            return
        name = f[0].encode("utf-8", "surrogatepass")
        self.keys.append(node_key(f[0]))
        self.lens.append(len(name))
        self.blob += name
        if len(self.keys) >= self.flush_at:
            yield from self._flush()

    def _flush(self) -> Iterator[tuple[int, tuple[bytes, bytes, bytes]]]:
        keys = np.frombuffer(self.keys, dtype=np.int64).copy()
        lens = np.frombuffer(self.lens, dtype=np.int64).copy()
        blob = bytes(self.blob)
        self.start_bundle()
        if not len(keys):
            return
        ends = np.cumsum(lens)
        part = keys % self.partitions
        for p in np.unique(part).tolist():
            idx = np.flatnonzero(part == p)
            yield p, (keys[idx].tobytes(), lens[idx].tobytes(),
                      b"".join(blob[e - n : e] for e, n in zip(ends[idx].tolist(), lens[idx].tolist(), strict=True)))


def _name_labels(kv: tuple[int, dict]) -> Iterator[tuple[int, str]]:
    """A partition's {label: label packs, name: name packs} -> (label, node) for every labelled node."""
    _, g = kv
    nodes, labels = _unpack(g["label"])
    if len(nodes) == 0:
        return
    packs = list(g["name"])
    if not packs:
        return
    keys = np.concatenate([np.frombuffer(k, dtype=np.int64) for k, _, _ in packs])
    lens = np.concatenate([np.frombuffer(n, dtype=np.int64) for _, n, _ in packs])
    blob = b"".join(b for _, _, b in packs)  # the packs' names, in the order of keys and lens
    ends = np.cumsum(lens)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    lo = np.searchsorted(sorted_keys, nodes, side="left")
    hi = np.searchsorted(sorted_keys, nodes, side="right")
    for label, a, b in zip(labels.tolist(), lo.tolist(), hi.tolist(), strict=True):
        for k in order[a:b].tolist():  # one name per key, but for a (vanishingly rare) key collision
            yield label, blob[ends[k] - lens[k] : ends[k]].decode("utf-8", "surrogatepass")


def _survivor_labels(kv: tuple[int, Iterable[str]]) -> Iterator[tuple[str, str]]:
    """A component's nodes -> (node, the component's smallest node): the survivor rule, on node strings."""
    nodes = sorted(set(kv[1]))
    for node in nodes:
        yield node, nodes[0]


class ConnectedComponents(beam.PTransform):
    """Packs of undirected edges (both directions, `_PackEdges`) -> packs of (node, label) for every node on an edge;
    the label is the component's smallest node. `rounds` alternations of large-star and small-star on each
    partition's pairs (numpy), then a convergence check; nodes whose neighbours still disagree on their parent are
    resolved by one union-find over just those (counted in the summary)."""

    def __init__(self, label: str = "CC", rounds: int = CC_ROUNDS, partitions: int = PARTITIONS) -> None:
        super().__init__()
        self.label_ = label
        self.rounds = rounds
        self.partitions = partitions

    def expand(self, packs: Any) -> Any:
        n, parts = self.label_, self.partitions
        cur = packs
        for i in range(self.rounds):
            cur = (
                cur
                | f"{n}LargeGroup{i}" >> beam.GroupByKey()
                | f"{n}Large{i}" >> beam.FlatMap(_large_star, parts)
                | f"{n}SmallGroup{i}" >> beam.GroupByKey()
                | f"{n}Small{i}" >> beam.FlatMap(_small_star, parts)
            )
        adj = cur | f"{n}Adjacency" >> beam.GroupByKey()
        parents = adj | f"{n}Parent" >> beam.FlatMap(_parents)
        residual = (
            adj
            | f"{n}Claims" >> beam.FlatMap(_parent_claims, parts)
            | f"{n}ClaimsGroup" >> beam.GroupByKey()
            | f"{n}Residual" >> beam.FlatMap(_residual)
        )
        uf = residual | f"{n}UnionFind" >> beam.CombineGlobally(_UnionFind())
        labels = parents | f"{n}Label" >> beam.Map(_final_labels, beam.pvalue.AsSingleton(uf))
        self.residual_count = (residual | f"{n}ResidualNodes" >> beam.Map(lambda kv: kv[0])
                               | f"{n}ResidualDistinct" >> beam.Distinct())
        return labels


def _verify_first(kv: tuple[str, dict]) -> Iterator[tuple[str, tuple[str, bytes]]]:
    """CoGroupByKey by the larger node u: {edges: [m...], sig: [sig_u]} -> (m, (u, sig_u))."""
    u, g = kv
    sigs = list(g["sig"])
    if not sigs:
        return
    for m in sorted(set(g["edges"])):
        yield m, (u, sigs[0])


def _verify_second(kv: tuple[str, dict], threshold: float) -> Iterator[tuple[str, Any]]:
    m, g = kv
    sigs = list(g["sig"])
    if not sigs:
        return
    for u, sig_u in sorted(set(g["cands"])):
        yield ("edge", (u, m)) if estimated_similarity(sig_u, sigs[0]) >= threshold else ("rejected", 1)


def _contamination_candidates(kv: tuple[str, dict]) -> Iterator[tuple[int, tuple[str, str]]]:
    node, g = kv
    labels = list(g["label"])
    root = labels[0] if labels else node
    for matched in g["matched"]:
        for h in matched:
            yield h, (node, root)


def _common_or_contaminating(kv: tuple[int, Iterable[tuple[str, str]]], limit: int | None) -> Iterator[Any]:
    h, pairs = kv
    pairs = set(pairs)
    roots = {r for _, r in pairs}
    if limit and len(roots) > limit:
        yield "common", h
        return
    for node, root in sorted(pairs):
        if node == root:  # survivors only: a duplicate is dropped as such before decontamination
            yield "hit", (node, h)


class _Contaminated(beam.DoFn):
    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.index: fd.TaskIndex | None = None

    def process(self, kv: tuple[str, Iterable[int]]) -> Iterable[tuple[str, tuple[str, ...]]]:
        if self.index is None:
            self.index = load_task_index(self.config)
        tasks = sorted({t for h in kv[1] for t in self.index.tasks_of(h)})
        yield kv[0], tuple(tasks)


# ------------------------------------------------------------------------------------------------ the transform
class DedupVerdicts(beam.PTransform):
    """Features -> (verdicts, summary parts): verdicts are (doc id, (reason, detail)) for dropped documents only;
    summary parts are small tagged records that `summarize` combines into stats.json's `dedup` section."""

    def __init__(self, config: DedupConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, feats: Any) -> Any:
        spec = self.config.spec
        parts: list[Any] = []
        verdicts: list[Any] = []
        p = feats.pipeline
        parts.append(_count(feats, "DedupCount", "documents"))
        if spec.exact:
            exact = (
                feats
                | "ExactKeys" >> beam.Map(lambda f: (f[1], f[0]))
                | "ExactGroup" >> beam.GroupByKey()
                | "ExactClusters" >> beam.FlatMap(_exact_groups)
            )
            verdicts.append(exact | "ExactDrops" >> beam.FlatMap(
                lambda kv: [(id_of(kv[1][0]), (EXACT, id_of(kv[1][1])))] if kv[0] == "drop" else []))
            parts.append(exact | "ExactSizes" >> beam.FlatMap(
                lambda kv: [("exact_size", kv[1])] if kv[0] == "size" else []))
        labels = p | "NoLabels" >> beam.Create([])
        if spec.near:
            edges = (
                feats
                | "BandPack" >> beam.ParDo(_PackBands())
                | "BandGroup" >> beam.GroupByKey()
                | "StarEdges" >> beam.FlatMap(_bucket_edges)
            )
            if spec.min_similarity:
                sigs = feats | "Sigs" >> beam.FlatMap(lambda f: [(node_key(f[0]), f[3])] if f[3] else [])
                first = (
                    {"edges": edges, "sig": sigs}
                    | "VerifyJoin1" >> beam.CoGroupByKey()
                    | "VerifyFirst" >> beam.FlatMap(_verify_first)
                )
                checked = (
                    {"cands": first, "sig": sigs}
                    | "VerifyJoin2" >> beam.CoGroupByKey()
                    | "VerifySecond" >> beam.FlatMap(_verify_second, spec.min_similarity)
                )
                edges = checked | "Verified" >> beam.FlatMap(lambda kv: [kv[1]] if kv[0] == "edge" else [])
                parts.append(_count(checked | "Rejected" >> beam.Filter(lambda kv: kv[0] == "rejected"),
                                    "RejectedCount", "rejected_edges"))
            parts.append(_count(edges, "EdgeCount", "edges"))
            cc = ConnectedComponents("CC")
            key_labels = edges | "EdgePacks" >> beam.ParDo(_PackEdges()) | "Components" >> cc
            parts.append(_count(cc.residual_count, "ResidualCount", "cc_residual_nodes"))
            names = feats | "NodeNames" >> beam.ParDo(_PackNames())
            labels = (
                {"label": key_labels, "name": names}
                | "NameJoin" >> beam.CoGroupByKey()
                | "NamedLabels" >> beam.FlatMap(_name_labels)
                | "ComponentGroup" >> beam.GroupByKey()
                | "SurvivorLabels" >> beam.FlatMap(_survivor_labels)
            )
            verdicts.append(labels | "NearDrops" >> beam.FlatMap(
                lambda nl: [(id_of(nl[0]), (NEAR, id_of(nl[1])))] if nl[0] != nl[1] else []))
            parts.append(
                labels
                | "ByRoot" >> beam.Map(lambda nl: (nl[1], nl[0]))
                | "ClusterGroup" >> beam.GroupByKey()
                | "Clusters" >> beam.Map(_cluster_record)
            )
        if spec.decontaminate:
            matched = feats | "Matched" >> beam.FlatMap(lambda f: [(f[0], f[4])] if f[4] else [])
            hits = (
                {"matched": matched, "label": labels}
                | "MatchedJoin" >> beam.CoGroupByKey()
                | "TaskGrams" >> beam.FlatMap(_contamination_candidates)
                | "TaskGramGroup" >> beam.GroupByKey()
                | "TaskGramCheck" >> beam.FlatMap(_common_or_contaminating, spec.decontaminate_common_documents)
            )
            parts.append(hits | "CommonCount" >> beam.FlatMap(
                lambda kv: [("common_task_ngrams", 1)] if kv[0] == "common" else []))
            contaminated = (
                hits
                | "Hits" >> beam.FlatMap(lambda kv: [kv[1]] if kv[0] == "hit" else [])
                | "HitsByNode" >> beam.GroupByKey()
                | "Tasks" >> beam.ParDo(_Contaminated(self.config))
            )
            verdicts.append(contaminated | "ContaminatedDrops" >> beam.Map(
                lambda kv: (id_of(kv[0]), (CONTAMINATED, ",".join(kv[1])))))
            parts.append(contaminated | "ContaminatedTasks" >> beam.Map(lambda kv: ("contaminated", kv[1])))
        if not verdicts:
            verdicts.append(p | "NoVerdicts" >> beam.Create([]))
        final = (
            verdicts
            | "AllVerdicts" >> beam.Flatten()
            | "OneVerdict" >> beam.CombinePerKey(lambda vs: min(vs, key=lambda v: (REASON_ORDER[v[0]], v[1])))
        )
        return final, parts


def _count(pcoll: Any, label: str, kind: str) -> Any:
    """A summary part (kind, number of elements), counted where the elements are made (one record crosses)."""
    return pcoll | label >> beam.combiners.Count.Globally() | f"{label}Part" >> beam.Map(lambda n: (kind, n))


def _cluster_record(kv: tuple[str, Iterable[str]]) -> tuple[str, Any]:
    root, nodes = kv
    members = sorted(set(nodes))
    comps: dict[int, int] = {}
    for m in members:
        comps[int(m[:2])] = comps.get(int(m[:2]), 0) + 1
    return "cluster", (len(members), root, [id_of(m) for m in members[:CLUSTER_MEMBERS]], sorted(comps.items()))


# ------------------------------------------------------------------------------------------------ summary
class SummaryFn(beam.CombineFn):
    """Counts, histograms and the largest clusters: integers and sorted lists, so the merge order does not matter."""

    def __init__(self, top: int = TOP_CLUSTERS) -> None:
        self.top = top

    def create_accumulator(self) -> dict:
        return {"counts": {}, "sizes": {}, "exact_sizes": {}, "tasks": {}, "top": []}

    def add_input(self, acc: dict, part: tuple[str, Any]) -> dict:
        kind, value = part
        if kind == "cluster":
            size = value[0]
            acc["sizes"][size] = acc["sizes"].get(size, 0) + 1
            acc["top"] = sorted([*acc["top"], value], key=lambda c: (-c[0], c[1]))[: self.top]
        elif kind == "exact_size":
            acc["exact_sizes"][value] = acc["exact_sizes"].get(value, 0) + 1
        elif kind == "contaminated":
            for t in value:
                acc["tasks"][t] = acc["tasks"].get(t, 0) + 1
        else:
            acc["counts"][kind] = acc["counts"].get(kind, 0) + value
        return acc

    def merge_accumulators(self, accs: Iterable[dict]) -> dict:
        out = self.create_accumulator()
        for acc in accs:
            for key in ("counts", "sizes", "exact_sizes", "tasks"):
                for k, v in acc[key].items():
                    out[key][k] = out[key].get(k, 0) + v
            out["top"] = sorted([*out["top"], *acc["top"]], key=lambda c: (-c[0], c[1]))[: self.top]
        return out

    def extract_output(self, acc: dict) -> dict:
        return acc


def finish_summary(acc: dict, spec: DedupSpec, snippets: dict[str, str], task_stats: dict[str, Any]) -> dict:
    """stats.json's `dedup` section (cluster_sizes: size -> clusters, what the report plots)."""
    names = {i: c for c, i in component_ranks(spec.priority).items()}
    counts = acc["counts"]
    return {
        "settings": {"ngram": spec.ngram, "num_perm": spec.num_perm, "bands": spec.bands, "rows": spec.rows,
                     "implied_threshold": round(fd.implied_threshold(spec.bands, spec.rows), 6),
                     "min_similarity": spec.min_similarity, "fold_spelling": spec.fold_spelling,
                     "priority": [names[i] for i in sorted(names)], "decontaminate_ngram": spec.decontaminate_ngram,
                     "decontaminate_common_documents": spec.decontaminate_common_documents},
        "documents": counts.get("documents", 0),
        "candidate_edges_verified": counts.get("edges", 0),
        "candidate_edges_rejected": counts.get("rejected_edges", 0),
        "cc_residual_nodes": counts.get("cc_residual_nodes", 0),
        "cluster_sizes": {str(k): acc["sizes"][k] for k in sorted(acc["sizes"])},
        "exact_cluster_sizes": {str(k): acc["exact_sizes"][k] for k in sorted(acc["exact_sizes"])},
        "largest_clusters": [
            {"size": size, "survivor": id_of(root), "members": members,
             "components": {names[r]: n for r, n in comps}, "snippet": snippets.get(id_of(root), "")}
            for size, root, members, comps in acc["top"]
        ],
        "contaminated_by_task": dict(sorted(acc["tasks"].items())),
        "common_task_ngrams_ignored": counts.get("common_task_ngrams", 0),
        "tasks": task_stats,
    }


def task_stats(config: DedupConfig) -> dict[str, Any]:
    """What decontamination compared against (computed once, on the machine that builds the pipeline)."""
    if not config.spec.decontaminate:
        return {}
    index = load_task_index(config)
    return {"sources": [s.path if s.fields else "builtin:" + Path(s.path).name for s in config.task_sources],
            "texts": dict(sorted(index.texts.items())),
            "texts_shorter_than_ngram": dict(sorted(index.too_short.items())),
            "ngrams": len(index)}


def _snippet(item: Any, top: dict) -> Iterator[tuple[str, str]]:
    if top and item.alive and item.doc.id in top["roots"]:
        yield item.doc.id, " ".join(item.doc.text[: SNIPPET_CHARS * 2].split())[:SNIPPET_CHARS]


def _top_roots(acc: dict) -> dict:
    return {"roots": {id_of(c[1]) for c in acc["top"]}}


# ------------------------------------------------------------------------------------------------ curate hook
def dedup_stage(plan: Any, alive: Any) -> tuple[Any, Any]:
    """The curate job's dedup stage (pipelines.curate.DEDUP_STAGES): Curated items in, the same items out with
    drop_reason set on the alive ones that are duplicates or contaminated, plus a one-element PCollection: the
    summary. Items already dropped or errored pass through untouched."""
    config: DedupConfig = plan.dedup
    feats = alive | "DedupFeatures" >> beam.ParDo(_CuratedFeatures(config))
    verdicts, parts = feats | "DedupVerdicts" >> DedupVerdicts(config)
    acc = parts | "DedupParts" >> beam.Flatten() | "DedupSummary" >> beam.CombineGlobally(SummaryFn())
    snippets = alive | "DedupSnippets" >> beam.FlatMap(_snippet, beam.pvalue.AsSingleton(
        acc | "TopRoots" >> beam.Map(_top_roots)))
    stats = task_stats(config)
    summary = acc | "DedupFinish" >> beam.Map(lambda a, s: finish_summary(a, config.spec, s, stats),
                                              beam.pvalue.AsDict(snippets))
    items = alive | "DedupApply" >> beam.Map(_apply, beam.pvalue.AsDict(verdicts))
    return items, summary


def _apply(item: Any, verdicts: dict) -> Any:
    verdict = verdicts.get(item.doc.id) if item.alive else None
    if verdict is not None:
        item.drop_reason = verdict[0]
    return item


# ------------------------------------------------------------------------------------------------ standalone job
def read_features(path: str, config: DedupConfig, component_of: dict[str, str]) -> Iterator[Features]:
    """Features of every document of a JSONL(.gz) document file (text dropped as soon as it is hashed)."""
    from data_specs.records import read_documents

    featurize = _Featurizer(config)
    for doc in read_documents(path):
        yield featurize(node_of(config.rank_of(component_of.get(doc.component, doc.component)), doc.id), doc.text)


class _WriteSurvivors(beam.DoFn):
    """Re-read one input file and write the documents without a verdict: the join back by id, file by file."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def process(self, path: str, verdicts: dict) -> Iterable[tuple[str, int]]:
        from data_specs.records import read_documents
        from pipelines.curate_core import write_jsonl_gz_atomic

        count = [0]

        def kept() -> Iterator[dict]:  # streamed: one document in memory at a time
            for d in read_documents(path):
                if d.id not in verdicts:
                    count[0] += 1
                    yield d.to_dict()

        write_jsonl_gz_atomic(f"{self.out_dir}/documents/{Path(path).name}", kept())  # type: ignore[arg-type]
        yield "kept", count[0]


def dedup_files_job(files: Sequence[str], out_dir: str | Path, spec: DedupSpec, beam_args: Sequence[str] = (),
                    task_dir: str | None = None) -> dict[str, Any]:
    """Dedup (and decontaminate) document files on their own: OUT/documents/<file> (survivors, same order),
    OUT/verdicts.jsonl.gz (dropped id, reason, survivor or tasks; sorted), OUT/summary.json. Returns the summary."""
    from pipelines.beam_options import pipeline_options
    from pipelines.curate_core import write_bytes_atomic, write_jsonl_gz_atomic

    out_dir = str(out_dir)
    config = config_for(spec, task_dir)
    stats = task_stats(config)
    log.info("%s", describe(spec))
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    names = pipeline | "Files" >> beam.Create(sorted(files))
    feats = (
        names
        | "SpreadFiles" >> beam.Reshuffle()
        | "Features" >> beam.FlatMap(read_features, config, {})
    )
    verdicts, parts = feats | "DedupVerdicts" >> DedupVerdicts(config)
    kept = names | "WriteSurvivors" >> beam.ParDo(_WriteSurvivors(out_dir), beam.pvalue.AsDict(verdicts))
    parts.append(kept)
    (
        parts
        | "DedupParts" >> beam.Flatten()
        | "DedupSummary" >> beam.CombineGlobally(SummaryFn())
        | "WriteSummary" >> beam.Map(lambda acc: write_bytes_atomic(
            f"{out_dir}/summary.json",
            (json.dumps({**finish_summary(acc, spec, {}, stats), "kept": acc["counts"].get("kept", 0)},
                        sort_keys=True, indent=2) + "\n").encode()))
    )
    (
        verdicts
        | "VerdictRows" >> beam.Map(lambda kv: (None, (kv[0], *kv[1])))
        | "VerdictsGroup" >> beam.GroupByKey()
        | "WriteVerdicts" >> beam.Map(lambda kv: write_jsonl_gz_atomic(
            f"{out_dir}/verdicts.jsonl.gz",
            ({"id": i, "reason": r, "detail": d} for i, r, d in sorted(kv[1], key=lambda row: row[0]))))
    )
    state = pipeline.run().wait_until_finish()
    if str(state) not in ("DONE", "PipelineState.DONE"):
        raise RuntimeError(f"dedup: the Beam job ended in state {state}")
    return json.loads(Path(out_dir, "summary.json").read_text())
