"""Dedup's settings as the transforms need them (DedupConfig, picklable), the node naming behind the survivor rule,
the task index of decontamination and the one-line description. No Beam here: the report reads `describe`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_specs.records import COMPONENTS
from data_specs.specs import DedupSpec
from filters import dedup as fd
from pipelines.curate.schema import DEDUP_REASONS, EXACT_DUPLICATE, NEAR_DUPLICATE

EXACT, NEAR = EXACT_DUPLICATE, NEAR_DUPLICATE
REASONS = DEDUP_REASONS  # a verdict's reason code is its place here; a document's lowest one wins


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
