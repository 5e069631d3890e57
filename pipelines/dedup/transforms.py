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
shuffle but verification's and decontamination's carries packs (pipelines.dedup.packs): a few byte strings per
partition, not an object per row, so a shuffle held in memory (the in-process runner's) costs a few bytes a row.

Modules: config (settings, nodes; no Beam), features, clustering (exact groups, LSH, verification, survivors),
transforms (this: ExactDuplicates, NearDuplicates, Decontamination composed by DedupVerdicts; verdict lookup),
summary, job (the curate hook `dedup_stage` and `dedup_files_job`, which runs the same transforms over document
files on their own, bench/dedup.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np

from filters import dedup as fd
from pipelines.beam.memory import return_freed_memory
from pipelines.curate.schema import CONTAMINATED
from pipelines.dedup import packs
from pipelines.dedup.clustering import (
    BAND_SHUFFLES,
    PackBands,
    PackExact,
    PackNames,
    Survivors,
    bucket_edges,
    distinct_edges,
    exact_labels,
    verify_first,
    verify_second,
)
from pipelines.dedup.components import ConnectedComponents
from pipelines.dedup.config import EXACT, NEAR, REASONS, DedupConfig, id_of, load_task_index, node_key
from pipelines.dedup.packs import PARTITIONS, Pack
from pipelines.dedup.summary import count_part


class ExactDuplicates(beam.PTransform):
    """(features, name packs) -> `Survivors`' outputs (verdicts, roots, summary) for the groups of documents with
    the same exact key."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        super().__init__()
        self.partitions = partitions

    def expand(self, inputs: tuple[Any, Any]) -> Any:
        feats, names = inputs
        labels = (
            feats
            | "ExactPack" >> beam.ParDo(PackExact(self.partitions))
            | "ExactGroup" >> beam.GroupByKey()
            | "ExactLabels" >> beam.ParDo(packs.Packer(exact_labels, partitions=self.partitions))
        )
        return (labels, names) | "Exact" >> Survivors("Exact", EXACT, self.partitions)


class NearDuplicates(beam.PTransform):
    """(features, name packs) -> (verdicts, roots, summary parts): LSH buckets (one shuffle per band group), star
    edges, verification of their estimated Jaccard (when `min_similarity` is set), distinct edges, connected
    components, then `Survivors` over the components."""

    def __init__(self, config: DedupConfig, partitions: int = PARTITIONS) -> None:
        super().__init__()
        self.config = config
        self.partitions = partitions

    def expand(self, inputs: tuple[Any, Any]) -> Any:
        feats, names = inputs
        spec, parts_n = self.config.spec, self.partitions
        parts: list[Any] = []
        shuffles = min(spec.bands, BAND_SHUFFLES)
        band_packs = feats | "BandPack" >> beam.ParDo(PackBands(spec.bands, shuffles, parts_n)).with_outputs(
            *(str(b) for b in range(shuffles)))
        star = [
            band_packs[str(b)]
            | f"BandGroup{b}" >> beam.GroupByKey()
            | f"StarEdges{b}" >> beam.ParDo(packs.Packer(bucket_edges, partitions=parts_n))
            for b in range(shuffles)
        ]
        edges = star | "StarEdges" >> beam.Flatten()
        if spec.min_similarity:
            sigs = feats | "Sigs" >> beam.FlatMap(lambda f: [(f.node_key, f.signature)] if f.signature else [])
            first = (
                {"edges": edges | "StarPairs" >> beam.FlatMap(packs.pairs_of), "sig": sigs}
                | "VerifyJoin1" >> beam.CoGroupByKey()
                | "VerifyFirst" >> beam.FlatMap(verify_first)
            )
            checked = (
                {"cands": first, "sig": sigs}
                | "VerifyJoin2" >> beam.CoGroupByKey()
                | "VerifySecond" >> beam.FlatMap(verify_second, spec.min_similarity)
            )
            verified = checked | "Verified" >> beam.FlatMap(lambda kv: [kv[1]] if kv[0] == "edge" else [])
            parts.append(count_part(checked | "Rejected" >> beam.Filter(lambda kv: kv[0] == "rejected"),
                                    "RejectedCount", "rejected_edges"))
            edges = verified | "VerifiedPacks" >> beam.ParDo(packs.PackPairs(parts_n))
        distinct = (
            edges
            | "EdgeGroup" >> beam.GroupByKey()
            | "DistinctEdges" >> beam.ParDo(packs.Packer(distinct_edges, partitions=parts_n))
            .with_outputs("count", main="edges")
        )
        parts.append(distinct.count)
        cc = ConnectedComponents("CC", partitions=parts_n)
        key_labels = distinct.edges | "Components" >> cc
        parts.append(count_part(cc.residual_count, "ResidualCount", "cc_residual_nodes"))
        near = (key_labels, names) | "Near" >> Survivors("Near", NEAR, parts_n)
        parts.append(near.summary)
        return near.verdicts, near.roots, parts


class Decontamination(beam.PTransform):
    """(features, roots of the near-duplicate clusters) -> (verdict packs, summary parts): a surviving document
    holding a task n-gram is `contaminated`, unless the n-gram is common (found in more than
    `decontaminate_common_documents` distinct clusters)."""

    def __init__(self, config: DedupConfig, partitions: int = PARTITIONS) -> None:
        super().__init__()
        self.config = config
        self.partitions = partitions

    def expand(self, inputs: tuple[Any, Any]) -> Any:
        feats, roots = inputs
        parts_n = self.partitions
        matched = feats | "Matched" >> beam.FlatMap(
            lambda f: [(f.node_key % parts_n, (f.node_key, f.node, f.task_ngrams))] if f.task_ngrams else [])
        hits = (
            {"matched": matched, "roots": roots}
            | "MatchedJoin" >> beam.CoGroupByKey()
            | "TaskGrams" >> beam.FlatMap(_contamination_candidates)
            | "TaskGramGroup" >> beam.GroupByKey()
            | "TaskGramCheck" >> beam.FlatMap(_common_or_contaminating,
                                              self.config.spec.decontaminate_common_documents)
        )
        common = hits | "CommonCount" >> beam.FlatMap(
            lambda kv: [("common_task_ngrams", 1)] if kv[0] == "common" else [])
        contaminated = (
            hits
            | "Hits" >> beam.FlatMap(lambda kv: [kv[1]] if kv[0] == "hit" else [])
            | "HitsByNode" >> beam.GroupByKey()
            | "Tasks" >> beam.ParDo(_Contaminated(self.config))
        )
        verdicts = contaminated | "ContaminatedVerdicts" >> beam.ParDo(
            packs.Packer(_contaminated_verdict, partitions=parts_n))
        return verdicts, [common, contaminated | "ContaminatedTasks" >> beam.Map(lambda kv: ("contaminated", kv[1]))]


class DedupVerdicts(beam.PTransform):
    """Features -> (verdicts, summary parts): verdicts are packs of resolved rows (node key, reason code, doc id,
    detail) for the dropped documents only (`verdict_index`, `verdict_rows` read them); summary parts are small
    tagged records that SummaryFn combines into stats.json's `dedup` section. Exact, near and decontamination run
    as the spec turns them on; a document's lowest reason wins."""

    def __init__(self, config: DedupConfig, partitions: int = PARTITIONS) -> None:
        super().__init__()
        self.config = config
        self.partitions = partitions

    def expand(self, feats: Any) -> Any:
        spec, parts_n = self.config.spec, self.partitions
        parts: list[Any] = [count_part(feats, "DedupCount", "documents")]
        verdicts: list[Any] = []
        names = feats | "NodeNames" >> beam.ParDo(PackNames(parts_n))
        roots = feats.pipeline | "NoRoots" >> beam.Create([])
        if spec.exact:
            exact = (feats, names) | "ExactDuplicates" >> ExactDuplicates(parts_n)
            verdicts.append(exact.verdicts)
            parts.append(exact.summary)
        if spec.near:
            near, roots, near_parts = (feats, names) | "NearDuplicates" >> NearDuplicates(self.config, parts_n)
            verdicts.append(near)
            parts += near_parts
        if spec.decontaminate:
            contaminated, decon_parts = (feats, roots) | "Decontamination" >> Decontamination(self.config, parts_n)
            verdicts.append(contaminated)
            parts += decon_parts
        if not verdicts:
            verdicts.append(feats.pipeline | "NoVerdicts" >> beam.Create([]))
        resolved = (
            verdicts
            | "AllVerdicts" >> beam.Flatten()
            | "VerdictGroup" >> beam.GroupByKey()
            | "OneVerdict" >> beam.FlatMap(_resolve)
        )
        return resolved, parts


def verdict_index(resolved: Any, label: str = "VerdictIndex") -> Any:
    """Resolved verdict packs -> a one-element PCollection: the index `verdict_of` reads (as a singleton)."""
    return resolved | label >> beam.CombineGlobally(VerdictIndex())


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


class VerdictIndex(beam.CombineFn):
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
