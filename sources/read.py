"""Sources -> document records: read a source's files (sources.resolve finds them) with its reader, stamp language
ID, and tally documents, words, bytes, errors and skips per source and per component."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from data_specs.errors import GlamkitError
from data_specs.hashing import uniform
from data_specs.records import Document, component_order
from data_specs.specs import SourceSpec
from filters.langid import language_meta
from sources.readers import READERS, ReadContext

log = logging.getLogger("glamkit.sources")


GROUP_SHARE_CAP = 0.05  # no web host should hold more than this share of the web component's pages
LARGEST_GROUPS = 5  # per source in stats.json
OTHER_KIND = "document"  # meta.kind of documents whose reader sets none (articles, books, posts, turns)


@dataclass
class SourceStats:
    component: str
    documents: int = 0
    words: int = 0
    bytes: int = 0
    files: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    unavailable: str | None = None
    kinds: Counter[str] = field(default_factory=Counter)  # documents by meta.kind: page, feed_item, sms, document
    groups: Counter[str] = field(default_factory=Counter)  # documents by split group (meta.group: a web page's host)

    def add(self, doc: Document) -> None:
        self.documents += 1
        self.words += len(doc.text.split())
        self.bytes += len(doc.text.encode("utf-8"))
        self.kinds[doc.meta.get("kind") or OTHER_KIND] += 1
        self.groups[doc.meta.get("group") or doc.id] += 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "component": self.component, "documents": self.documents, "words": self.words, "bytes": self.bytes,
            "files": self.files, "errors": dict(sorted(self.errors.items())),
            "skipped": dict(sorted(self.skipped.items())), "kinds": dict(sorted(self.kinds.items())),
            "groups": len(self.groups), "largest_groups": _largest(self.groups, self.documents, LARGEST_GROUPS),
        }
        if self.unavailable:
            out["unavailable"] = self.unavailable
        return out


def _largest(groups: Counter[str], total: int, n: int) -> list[dict[str, Any]]:
    top = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"group": g, "documents": c, "share": round(c / total, 4) if total else 0.0} for g, c in top]


def read_source(src: SourceSpec, files: list[str], roots: tuple[str, ...] = (), stats: SourceStats | None = None
                ) -> Iterator[Document]:
    """Every document of a source, language-stamped, with unique ids (a repeated id is counted, not written)."""
    try:
        reader = READERS[src.reader]
    except KeyError:
        raise GlamkitError(f"source {src.name}: unknown reader {src.reader!r} (one of {', '.join(READERS)})") from None
    stats = stats if stats is not None else SourceStats(src.component)
    ctx = ReadContext(src.name, src.component, dict(src.options), roots, stats.errors, stats.skipped)
    seen: set[int] = set()
    for path in files:
        if src.sample_fraction < 1.0 and uniform(ctx.relative(path), 0, "source-sample") >= src.sample_fraction:
            ctx.skip("sampled_out")  # whole files: a thinned source is never read, let alone extracted
            continue
        stats.files += 1
        for doc in reader(path, ctx):
            key = int.from_bytes(hashlib.blake2b(doc.id.encode("utf-8", "surrogatepass"), digest_size=8).digest())
            if key in seen:
                ctx.error("duplicate_id", path, doc.id)
                continue
            seen.add(key)
            doc = replace(doc, meta={**doc.meta, **language_meta(doc.text)})
            stats.add(doc)
            yield doc


def component_totals(per_source: dict[str, dict[str, Any]],
                     groups: dict[str, Counter[str]] | None = None) -> dict[str, dict[str, Any]]:
    """Per component: documents, words, bytes, errors, documents by kind, and (given each source's documents by
    group) the distinct split groups across its sources and the largest one, with its share."""
    totals: dict[str, dict[str, Any]] = {}
    merged: dict[str, Counter[str]] = {}
    for name, s in per_source.items():
        t = totals.setdefault(s["component"], {"documents": 0, "words": 0, "bytes": 0, "errors": Counter(),
                                               "kinds": Counter(), "sources": []})
        for k in ("documents", "words", "bytes"):
            t[k] += s[k]
        t["errors"].update(s["errors"])
        t["kinds"].update(s.get("kinds", {}))
        t["sources"].append(name)
        merged.setdefault(s["component"], Counter()).update((groups or {}).get(name, Counter()))
    out = {}
    for c, t in sorted(totals.items(), key=lambda kv: component_order(kv[0])):
        out[c] = {**t, "errors": dict(sorted(t["errors"].items())), "kinds": dict(sorted(t["kinds"].items()))}
        if groups is not None:
            out[c]["groups"] = len(merged[c])
            out[c]["largest_group"] = (_largest(merged[c], t["documents"], 1) or [None])[0]
    return out


def group_warnings(stats: dict[str, Any], cap: float = GROUP_SHARE_CAP, components: tuple[str, ...] = ("web",)
                   ) -> list[str]:
    """One line per component (web: its groups are hosts) whose largest group holds more than `cap` of it."""
    out = []
    for comp, t in stats["components"].items():
        top = t.get("largest_group")
        if comp in components and top and t.get("groups", 0) > 1 and top["share"] > cap:
            out.append(f"{comp}: host {top['group']} holds {top['share']:.1%} of its {t['documents']:,} documents "
                       f"(over {cap:.0%}: one site would dominate the classifier's negatives and the keep rule)")
    return out


def format_table(stats: dict[str, Any]) -> str:
    """The per-component table `glamkit sources stats` and the sources stage print."""
    rows = [("component", "documents", "pages", "feed items", "sms", "groups", "words", "bytes", "errors",
             "sources")]
    for comp in sorted(stats["components"], key=component_order):
        t = stats["components"][comp]
        errors = sum(t["errors"].values())
        kinds = t.get("kinds", {})
        rows.append((comp, f"{t['documents']:,}", f"{kinds.get('page', 0):,}", f"{kinds.get('feed_item', 0):,}",
                     f"{kinds.get('sms', 0):,}", f"{t.get('groups', 0):,}", f"{t['words']:,}", f"{t['bytes']:,}",
                     f"{errors:,}", ", ".join(t["sources"])))
    last = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(last)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, last)] + [r[last]]
        lines.append("  ".join(cells))
    reasons = Counter()
    for t in stats["components"].values():
        reasons.update(t["errors"])
    if reasons:
        lines.append("errors by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    missing = [n for n, s in stats["sources"].items() if s.get("unavailable")]
    if missing:
        lines.append("unavailable (skipped): " + ", ".join(missing))
    extra = [f"{n} ({s['component']}, {s['documents']:,} documents)" for n, s in stats["sources"].items()
             if s.get("for") == "classifier" and not s.get("unavailable")]
    if extra:
        lines.append("read for the quality classifier only: " + ", ".join(extra))
    lines += [f"warning: {w}" for w in group_warnings(stats)]
    return "\n".join(lines)
