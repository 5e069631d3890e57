"""The classifier's training and held-out sets, split by group so held-out metrics measure quality, not memory.

A group is a work, a site, a newsgroup or a debate (the source's `meta[group_key]`): all its documents land on the
same side of the split, by `uniform(group, seed, "classifier-split")`. Sampling, balancing and training order are
keyed hashes of the document ids too, so the same spec and documents always give the same sets, in the same order.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from data_specs.errors import GlamkitError
from data_specs.hashing import uniform
from data_specs.records import Document
from data_specs.specs import ClassifierSpec, SampleSpec


@dataclass(frozen=True)
class Example:
    doc_id: str
    text: str
    label: int  # 1: curated (high quality), 0: other web
    source: str
    component: str
    group: str


@dataclass(frozen=True)
class SplitSets:
    train: list[Example]
    heldout: list[Example]

    def sources(self) -> list[str]:
        return sorted({e.source for e in self.train + self.heldout})


URL_DIRECTORY = "url_directory"
HOST = "host"


def _split(url: str | None) -> SplitResult | None:
    try:
        return urlsplit(url) if url else None
    except ValueError:  # a URL urlsplit refuses (`http://[x`): as if there were none
        return None


def page_host(doc: Document) -> str | None:
    """A web document's host: its URL's (without www.), else the group its reader gave it (a host, or the page)."""
    parts = _split(doc.url)
    host = (parts.hostname or "").removeprefix("www.") if parts else ""
    return host or doc.meta.get("group")


def group_of(doc: Document, group_key: str) -> str:
    """The split unit. With group_key `host` (GLaM's setting), a web page's host, shared across sources (two
    collections holding pages of one site put them on the same side), and other documents' source-qualified
    `meta["group"]`; with `url_directory` a web page's source, host and folder (a section of a site); otherwise
    the source-qualified `meta[group_key]`. The document itself if nothing else applies."""
    if group_key == HOST:
        if doc.component == "web" and page_host(doc):
            return f"host:{page_host(doc)}"
        group_key = "group"
    if group_key == URL_DIRECTORY:
        parts = _split(doc.url)
        if doc.component == "web" and parts:
            return f"{doc.source}:{parts.netloc}{posixpath.dirname(parts.path)}"
        group_key = "group"
    return f"{doc.source}:{doc.meta.get(group_key) or doc.id}"


def _sample(docs: Iterable[Document], sample: SampleSpec, seed: int) -> list[Document]:
    docs = list(docs)
    if sample.max_docs is not None and len(docs) > sample.max_docs:
        docs = sorted(docs, key=lambda d: uniform(d.id, seed, "classifier-sample"))[: sample.max_docs]
    return docs


def _balanced(examples: list[Example], seed: int) -> list[Example]:
    pos = [e for e in examples if e.label == 1]
    neg = [e for e in examples if e.label == 0]
    n = min(len(pos), len(neg))

    def pick(xs: list[Example]) -> list[Example]:
        return sorted(xs, key=lambda e: uniform(e.doc_id, seed, "classifier-balance"))[:n]

    return pick(pos) + pick(neg)


def build_sets(spec: ClassifierSpec, docs_by_source: Mapping[str, Iterable[Document]]) -> SplitSets:
    """Label, sample, split by group and (for training) balance the spec's sources."""
    examples: list[Example] = []
    for label, samples in ((1, spec.positives), (0, spec.negatives)):
        for sample in samples:
            if sample.source not in docs_by_source:
                raise GlamkitError(f"classifier {spec.name}: no documents for source {sample.source!r}: the sources "
                                   "stage reads every source a mixture's classifier spec names; rerun it (`glamkit "
                                   "sources read --spec MIXTURE --run RUN --force`)")
            for doc in _sample(docs_by_source[sample.source], sample, spec.seed):
                if doc.text.strip():
                    examples.append(Example(doc.id, doc.text, label, doc.source, doc.component,
                                            group_of(doc, spec.group_key)))
    heldout = [e for e in examples if uniform(e.group, spec.seed, "classifier-split") < spec.heldout_fraction]
    train = [e for e in examples if uniform(e.group, spec.seed, "classifier-split") >= spec.heldout_fraction]
    if spec.balance:
        train = _balanced(train, spec.seed)
    for name, part in (("training", train), ("held-out", heldout)):
        if {e.label for e in part} != {0, 1}:
            raise GlamkitError(
                f"classifier {spec.name}: the {name} set lacks a class after the group split "
                f"({len(part)} documents); add sources or change heldout_fraction/seed"
            )
    order = lambda e: uniform(e.doc_id, spec.seed, "classifier-order")  # noqa: E731 - SGD order, keyed by id
    return SplitSets(sorted(train, key=order), sorted(heldout, key=order))
