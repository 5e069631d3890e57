"""Dedup and decontamination as Beam transforms: thin glue over `filters/dedup.py`.

    documents (text)         one pass per document: exact key, MinHash band keys, b-bit signature, the task n-grams
      -> features            it contains (no text from here on)
      -> exact groups        (exact key, node key) packs, GroupByKey       -> label packs: (node, exact key) of every
                                                                             group of two or more
      -> LSH buckets         one shuffle per band: (band key, node key) packs, GroupByKey -> star edges (member,
                                                                             bucket's smallest member)
      -> verification        CoGroupByKey(node key), twice (min_similarity) -> edges whose estimated Jaccard passes
      -> distinct edges      GroupByKey: an edge found in several bands counts once
      -> connected components: alternating large-star / small-star rounds (Kiveris et al. 2014), a convergence
         check, and a union-find over the (normally empty) residual    -> label packs: (node, component label)
      -> survivors (exact groups and components alike): the name join, CoGroupByKey(node key) with (node key,
         node) packs, then GroupByKey(label): a group's smallest node survives, the others get a verdict
      -> decontamination: task n-grams found in more than `decontaminate_common_documents` distinct clusters are
         common phrases (ignored); a surviving document holding any other task n-gram is `contaminated`
      -> verdicts: GroupByKey(node key): one per dropped document (its lowest reason), then an index of sorted
         node keys that the documents are looked up in as a side input (the text never goes through a shuffle)

"First" is the survivor rule, which depends on nothing but the documents: a node is the string
`<component rank><doc id>`, the rank being the component's place in `DedupSpec.priority`, so the smallest node of a
cluster is its highest-priority component's smallest id. Nodes travel as 63-bit integer keys (`node_key`), and every
shuffle but verification's and decontamination's carries packs (pipelines.packs): a few byte strings per partition,
not an object per row, so a shuffle held in memory (the in-process runner's) costs a few bytes a row.

The curate job calls `dedup_stage`; `dedup_files_job` runs the same transforms over
document files on their own (bench/dedup.py), writing the survivors' documents by re-reading the files.
"""

from __future__ import annotations

import bisect
import dataclasses
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

from data_specs import io as fileio
from data_specs.records import COMPONENTS
from data_specs.specs import DedupSpec
from filters import dedup as fd
from pipelines import packs
from pipelines.buffered import BufferedDoFn
from pipelines.components import ConnectedComponents
from pipelines.curate_core import CONTAMINATED, DEDUP_REASONS, EXACT_DUPLICATE, NEAR_DUPLICATE
from pipelines.memory import return_freed_memory
from pipelines.packs import PACK_ENTRIES, PARTITIONS, Pack, PairPacker

log = logging.getLogger("glamkit.dedup")

EXACT, NEAR = EXACT_DUPLICATE, NEAR_DUPLICATE
REASONS = DEDUP_REASONS  # a verdict's reason code is its place here; a document's lowest one wins
TOP_CLUSTERS = 10
CLUSTER_MEMBERS = 20  # ids listed per reported cluster
SNIPPET_CHARS = 300
SIG_BITS = 16  # bits of each MinHash value kept for verification (b-bit MinHash; collision bias corrected)
BAND_SHUFFLES = 4  # shuffles the LSH buckets go through (bands share them round-robin; fewest peak RSS at 16x)


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
# What dedup knows of a document: (node, exact key, band keys, b-bit signature bytes, task n-grams, node key).
Features = tuple[str, bytes, tuple[int, ...], bytes, tuple[int, ...], int]


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
        return node, exact, bands, sig, matched, node_key(node)


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
class _PackExact(PairPacker):
    """(exact key, node key) of every document, packed by exact key (its first 63 bits)."""

    def pairs(self, f: Features) -> Iterable[tuple[int, int]]:
        if f[1]:
            yield int.from_bytes(f[1][:8], "little") >> 1, f[5]


def _exact_labels(kv: tuple[int, Iterable[tuple[bytes, ...]]]) -> Iterator[packs.Rows]:
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


class _PackBands(BufferedDoFn):
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
        if not f[2]:
            return
        self.nodes.append(f[5])
        for keys, key in zip(self.keys, f[2], strict=True):
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


def _bucket_edges(kv: tuple[int, Iterable[tuple[bytes, ...]]]) -> Iterator[Any]:
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


def _distinct_edges(kv: tuple[int, Iterable[tuple[bytes, ...]]]) -> Iterator[Any]:
    """A partition's star edges from every band -> each distinct edge once, both ways (what ConnectedComponents
    takes), and their number. Near-identical documents share most bands, so most edges come from several bands
    (eight times over on the benchmark's input): the components work on the distinct ones."""
    a, b = packs.pairs(kv[1])
    if len(a) == 0:
        return
    edges = np.unique(np.stack([a, b], axis=1), axis=0)
    yield packs.pair_rows(*packs.both_ways(edges[:, 0], edges[:, 1]))
    yield beam.pvalue.TaggedOutput("count", ("edges", len(edges)))


class _PackNames(BufferedDoFn):
    """(node key, node) of every document, packed by node key: what turns the labels of node keys back into
    node strings, which the survivor rule compares."""

    def __init__(self, partitions: int = PARTITIONS, flush_at: int = PACK_ENTRIES) -> None:
        self.partitions = partitions
        self.flush_at = flush_at

    def _reset(self) -> None:
        self.keys = array("q")
        self.names: list[bytes] = []

    def process(self, f: Features) -> Iterator[Pack]:
        self.keys.append(f[5])
        self.names.append(f[0].encode("utf-8", "surrogatepass"))
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
            summary.add_input(acc, _cluster_record([name.decode("utf-8", "surrogatepass") for name, _ in members]))
    dropped_col = np.array(dropped, dtype=np.int64)
    yield packs.Rows(dropped_col, (dropped_col, np.full(len(dropped), reason, dtype=np.int64)), (ids, details))
    yield packs.pair_rows(dropped_col, np.array(roots, dtype=np.int64), tag="roots")
    yield beam.pvalue.TaggedOutput("summary", ("summary", acc))


class _Survivors(beam.PTransform):
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


def _cluster_record(members: list[str]) -> tuple[str, Any]:
    """A near-duplicate cluster (its nodes, sorted) as a summary part."""
    comps: dict[int, int] = {}
    for m in members:
        comps[int(m[:2])] = comps.get(int(m[:2]), 0) + 1
    return "cluster", (len(members), members[0], [id_of(m) for m in members[:CLUSTER_MEMBERS]], sorted(comps.items()))


def _resolve(kv: tuple[int, Iterable[tuple[bytes, ...]]]) -> Iterator[Pack]:
    """A partition's verdict packs -> one row per node (its lowest reason, then smallest detail), by node key."""
    (keys, reasons), (ids, details) = packs.columns(kv[1], 2, 2)
    best: dict[int, tuple[int, bytes, bytes]] = {}
    for k, r, i, d in zip(keys.tolist(), reasons.tolist(), ids, details, strict=True):
        if k not in best or (r, d) < (best[k][0], best[k][2]):
            best[k] = (r, i, d)
    order = sorted(best)
    key_col = np.array(order, dtype=np.int64)
    for _, cols in packs.split(np.zeros(len(order), dtype=np.int64),
                               [key_col, np.array([best[k][0] for k in order], dtype=np.int64)],
                               [[best[k][1] for k in order], [best[k][2] for k in order]], 1):
        yield kv[0], cols


class _VerdictIndex(beam.CombineFn):
    """Resolved verdict packs -> (sorted node keys, their reason codes) as two byte strings: what the curate job and
    the survivors' writer look documents up in, 16 bytes per dropped document."""

    def create_accumulator(self) -> list:
        return []

    def add_input(self, acc: list, pack: Pack) -> list:
        acc.append(pack[1][:2])
        return acc

    def merge_accumulators(self, accs: Iterable[list]) -> list:
        return [p for acc in accs for p in acc]

    def extract_output(self, acc: list) -> tuple[bytes, bytes]:
        (keys, reasons), _ = packs.columns(acc, 2)
        order = np.argsort(keys, kind="stable")
        return keys[order].tobytes(), reasons[order].tobytes()


def verdict_of(index: tuple[bytes, bytes], node: str) -> str | None:
    """The drop reason of a node in a verdict index, or None (kept)."""
    keys = memoryview(index[0]).cast("q")
    k = node_key(node)
    i = bisect.bisect_left(keys, k)
    return REASONS[memoryview(index[1]).cast("q")[i]] if i < len(keys) and keys[i] == k else None


def verdict_rows(resolved: Iterable[Pack]) -> Iterator[dict[str, str]]:
    """Resolved verdict packs -> {id, reason, detail} rows in id order, made one at a time."""
    return_freed_memory()  # the job's last stage: what the clustering stages freed goes back first
    (_, reasons), (ids, details) = packs.columns([p[1] for p in resolved], 2, 2)
    reasons = reasons.tolist()
    for i in sorted(range(len(ids)), key=lambda i: (ids[i], reasons[i], details[i])):  # UTF-8 order: code points
        yield {"id": ids[i].decode("utf-8", "surrogatepass"), "reason": REASONS[reasons[i]],
               "detail": details[i].decode("utf-8", "surrogatepass")}


def _verify_first(kv: tuple[int, dict]) -> Iterator[tuple[int, tuple[int, bytes]]]:
    """CoGroupByKey by the larger node u: {edges: [m...], sig: [sig_u]} -> (m, (u, sig_u))."""
    u, g = kv
    sigs = list(g["sig"])
    if not sigs:
        return
    for m in sorted(set(g["edges"])):
        yield m, (u, sigs[0])


def _verify_second(kv: tuple[int, dict], threshold: float) -> Iterator[tuple[str, Any]]:
    m, g = kv
    sigs = list(g["sig"])
    if not sigs:
        return
    for u, sig_u in sorted(set(g["cands"])):
        yield ("edge", (u, m)) if estimated_similarity(sig_u, sigs[0]) >= threshold else ("rejected", 1)


def _contamination_candidates(kv: tuple[int, dict]) -> Iterator[tuple[int, tuple[str, int, bool]]]:
    """A partition's {matched: (node key, node, task n-grams), roots: (node key, survivor key) packs} ->
    (task n-gram, (node, its cluster's survivor key, whether it is the survivor))."""
    _, g = kv
    matched = list(g["matched"])
    if not matched:
        return
    nodes, roots = packs.pairs(g["roots"])
    root_of = dict(zip(nodes.tolist(), roots.tolist(), strict=True))
    for key, node, hashes in matched:
        root = root_of.get(key, key)
        for h in hashes:
            yield h, (node, root, root == key)


def _common_or_contaminating(kv: tuple[int, Iterable[tuple[str, int, bool]]], limit: int | None) -> Iterator[Any]:
    h, rows = kv
    rows = set(rows)
    if limit and len({root for _, root, _ in rows}) > limit:
        yield "common", h
        return
    for node, _, survivor in sorted(rows):
        if survivor:  # a duplicate is dropped as such before decontamination
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


def _contaminated_verdict(kv: tuple[str, tuple[str, ...]]) -> Iterator[packs.Rows]:
    node, tasks = kv
    key = np.array([node_key(node)], dtype=np.int64)
    yield packs.Rows(key, (key, np.array([REASONS.index(CONTAMINATED)], dtype=np.int64)),
                     ([id_of(node).encode("utf-8", "surrogatepass")], [",".join(tasks).encode()]))


# ------------------------------------------------------------------------------------------------ the transform
class DedupVerdicts(beam.PTransform):
    """Features -> (verdicts, summary parts): verdicts are packs of resolved rows (node key, reason code, doc id,
    detail) for the dropped documents only (`verdict_index`, `verdict_rows` read them); summary parts are small
    tagged records that SummaryFn combines into stats.json's `dedup` section."""

    def __init__(self, config: DedupConfig, partitions: int = PARTITIONS) -> None:
        super().__init__()
        self.config = config
        self.partitions = partitions

    def expand(self, feats: Any) -> Any:
        spec, parts_n = self.config.spec, self.partitions
        parts: list[Any] = []
        verdicts: list[Any] = []
        p = feats.pipeline
        parts.append(_count(feats, "DedupCount", "documents"))
        names = feats | "NodeNames" >> beam.ParDo(_PackNames(parts_n))
        roots = p | "NoRoots" >> beam.Create([])
        if spec.exact:
            exact_labels = (
                feats
                | "ExactPack" >> beam.ParDo(_PackExact(parts_n))
                | "ExactGroup" >> beam.GroupByKey()
                | "ExactLabels" >> beam.ParDo(packs.Packer(_exact_labels, partitions=parts_n))
            )
            exact = (exact_labels, names) | "Exact" >> _Survivors("Exact", EXACT, parts_n)
            verdicts.append(exact.verdicts)
            parts.append(exact.summary)
        if spec.near:
            shuffles = min(spec.bands, BAND_SHUFFLES)
            band_packs = feats | "BandPack" >> beam.ParDo(_PackBands(spec.bands, shuffles, parts_n)).with_outputs(
                *(str(b) for b in range(shuffles)))
            star = [
                band_packs[str(b)]
                | f"BandGroup{b}" >> beam.GroupByKey()
                | f"StarEdges{b}" >> beam.ParDo(packs.Packer(_bucket_edges, partitions=parts_n))
                for b in range(shuffles)
            ]
            edges = star | "StarEdges" >> beam.Flatten()
            if spec.min_similarity:
                sigs = feats | "Sigs" >> beam.FlatMap(lambda f: [(f[5], f[3])] if f[3] else [])
                first = (
                    {"edges": edges | "StarPairs" >> beam.FlatMap(packs.pairs_of), "sig": sigs}
                    | "VerifyJoin1" >> beam.CoGroupByKey()
                    | "VerifyFirst" >> beam.FlatMap(_verify_first)
                )
                checked = (
                    {"cands": first, "sig": sigs}
                    | "VerifyJoin2" >> beam.CoGroupByKey()
                    | "VerifySecond" >> beam.FlatMap(_verify_second, spec.min_similarity)
                )
                verified = checked | "Verified" >> beam.FlatMap(lambda kv: [kv[1]] if kv[0] == "edge" else [])
                parts.append(_count(checked | "Rejected" >> beam.Filter(lambda kv: kv[0] == "rejected"),
                                    "RejectedCount", "rejected_edges"))
                edges = verified | "VerifiedPacks" >> beam.ParDo(packs.PackPairs(parts_n))
            distinct = (
                edges
                | "EdgeGroup" >> beam.GroupByKey()
                | "DistinctEdges" >> beam.ParDo(packs.Packer(_distinct_edges, partitions=parts_n))
                .with_outputs("count", main="edges")
            )
            parts.append(distinct.count)
            edges = distinct.edges
            cc = ConnectedComponents("CC", partitions=parts_n)
            key_labels = edges | "Components" >> cc
            parts.append(_count(cc.residual_count, "ResidualCount", "cc_residual_nodes"))
            near = (key_labels, names) | "Near" >> _Survivors("Near", NEAR, parts_n)
            verdicts.append(near.verdicts)
            parts.append(near.summary)
            roots = near.roots
        if spec.decontaminate:
            matched = feats | "Matched" >> beam.FlatMap(
                lambda f: [(f[5] % parts_n, (f[5], f[0], f[4]))] if f[4] else [])
            hits = (
                {"matched": matched, "roots": roots}
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
            verdicts.append(contaminated | "ContaminatedVerdicts" >> beam.ParDo(
                packs.Packer(_contaminated_verdict, partitions=parts_n)))
            parts.append(contaminated | "ContaminatedTasks" >> beam.Map(lambda kv: ("contaminated", kv[1])))
        if not verdicts:
            verdicts.append(p | "NoVerdicts" >> beam.Create([]))
        resolved = (
            verdicts
            | "AllVerdicts" >> beam.Flatten()
            | "VerdictGroup" >> beam.GroupByKey()
            | "OneVerdict" >> beam.FlatMap(_resolve)
        )
        return resolved, parts


def verdict_index(resolved: Any, label: str = "VerdictIndex") -> Any:
    """Resolved verdict packs -> a one-element PCollection: the index `verdict_of` reads (as a singleton)."""
    return resolved | label >> beam.CombineGlobally(_VerdictIndex())


def _count(pcoll: Any, label: str, kind: str) -> Any:
    """A summary part (kind, number of elements), counted where the elements are made (one record crosses)."""
    return pcoll | label >> beam.combiners.Count.Globally() | f"{label}Part" >> beam.Map(lambda n: (kind, n))


# ------------------------------------------------------------------------------------------------ summary
class SummaryFn(beam.CombineFn):
    """Counts, histograms and the largest clusters: integers and sorted lists, so the merge order does not matter."""

    def __init__(self, top: int = TOP_CLUSTERS) -> None:
        self.top = top

    def create_accumulator(self) -> dict:
        return {"counts": {}, "sizes": {}, "exact_sizes": {}, "tasks": {}, "top": []}

    def add_input(self, acc: dict, part: tuple[str, Any]) -> dict:
        kind, value = part
        if kind == "summary":  # a partial accumulator
            return self.merge_accumulators([acc, value])
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
    """The curate job's dedup stage (pipelines.curate.build): Curated items in, the same items out, the alive
    ones that are duplicates or contaminated as copies with drop_reason set, plus a one-element PCollection: the
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
    items = alive | "DedupApply" >> beam.Map(_apply, config, beam.pvalue.AsSingleton(verdict_index(verdicts)))
    return items, summary


def _apply(item: Any, config: DedupConfig, index: tuple[bytes, bytes]) -> Any:
    """The item, or a copy of it with the verdict's drop_reason (never the item changed: DedupFeatures and
    DedupSnippets read the same elements, and a runner may hand them all one object)."""
    if item.alive:
        reason = verdict_of(index, node_of(config.rank_of(item.component), item.doc.id))
        if reason is not None:
            return dataclasses.replace(item, drop_reason=reason)
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

    def __init__(self, out_dir: str, config: DedupConfig) -> None:
        self.out_dir = out_dir
        self.config = config

    def start_bundle(self) -> None:
        return_freed_memory()  # the last stage: what the clustering stages freed goes back first

    def process(self, path: str, index: tuple[bytes, bytes]) -> Iterable[tuple[str, int]]:
        from data_specs.records import read_documents

        count = [0]

        def kept() -> Iterator[dict]:  # streamed: one document in memory at a time
            for d in read_documents(path):
                if verdict_of(index, node_of(self.config.rank_of(d.component), d.id)) is None:
                    count[0] += 1
                    yield d.to_dict()

        fileio.write_jsonl_gz(f"{self.out_dir}/documents/{Path(path).name}", kept())
        yield "kept", count[0]


def dedup_files_job(files: Sequence[str], out_dir: str | Path, spec: DedupSpec, beam_args: Sequence[str] = (),
                    task_dir: str | None = None) -> dict[str, Any]:
    """Dedup (and decontaminate) document files on their own: OUT/documents/<file> (survivors, same order),
    OUT/verdicts.jsonl.gz (dropped id, reason, survivor or tasks; sorted), OUT/summary.json. Returns the summary."""
    from pipelines.beam_options import pipeline_options

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
    kept = names | "WriteSurvivors" >> beam.ParDo(_WriteSurvivors(out_dir, config),
                                                  beam.pvalue.AsSingleton(verdict_index(verdicts)))
    parts.append(kept)
    (
        parts
        | "DedupParts" >> beam.Flatten()
        | "DedupSummary" >> beam.CombineGlobally(SummaryFn())
        | "WriteSummary" >> beam.Map(lambda acc: fileio.write_json(
            f"{out_dir}/summary.json", {**finish_summary(acc, spec, {}, stats), "kept": acc["counts"].get("kept", 0)},
            sort_keys=True, indent=2))
    )
    (
        verdicts
        | "VerdictPacks" >> beam.Map(lambda pack: (None, pack))
        | "VerdictsGroup" >> beam.GroupByKey()
        | "WriteVerdicts" >> beam.Map(lambda kv: fileio.write_jsonl_gz(
            f"{out_dir}/verdicts.jsonl.gz", verdict_rows(kv[1])))
    )
    from pipelines.job_checks import fail_if, run_to_completion

    run_to_completion(pipeline, "dedup")

    expected = ["summary.json", "verdicts.jsonl.gz", *(f"documents/{Path(f).name}" for f in sorted(files))]
    fail_if("dedup", [name for name in expected if not fileio.exists(f"{out_dir}/{name}")], [])
    return json.loads(Path(out_dir, "summary.json").read_text())
