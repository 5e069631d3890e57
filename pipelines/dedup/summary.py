"""Dedup's summary (stats.json's `dedup` section): parts counted where they are made, combined by SummaryFn."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam

from data_specs.specs import DedupSpec
from filters import dedup as fd
from pipelines.dedup.config import DedupConfig, component_ranks, id_of, load_task_index

TOP_CLUSTERS = 10
CLUSTER_MEMBERS = 20  # ids listed per reported cluster
SNIPPET_CHARS = 300


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


def snippet(item: Any, top: dict) -> Iterator[tuple[str, str]]:
    if top and item.alive and item.doc.id in top["roots"]:
        yield item.doc.id, " ".join(item.doc.text[: SNIPPET_CHARS * 2].split())[:SNIPPET_CHARS]


def top_roots(acc: dict) -> dict:
    return {"roots": {id_of(c[1]) for c in acc["top"]}}


def cluster_record(members: list[str]) -> tuple[str, Any]:
    """A near-duplicate cluster (its nodes, sorted) as a summary part."""
    comps: dict[int, int] = {}
    for m in members:
        comps[int(m[:2])] = comps.get(int(m[:2]), 0) + 1
    return "cluster", (len(members), members[0], [id_of(m) for m in members[:CLUSTER_MEMBERS]], sorted(comps.items()))


def count_part(pcoll: Any, label: str, kind: str) -> Any:
    """A summary part (kind, number of elements), counted where the elements are made (one record crosses)."""
    return pcoll | label >> beam.combiners.Count.Globally() | f"{label}Part" >> beam.Map(lambda n: (kind, n))
