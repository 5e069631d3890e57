"""The curate job's stats: per component and source, what was read, kept, dropped (by reason) and errored, and the
conservation check (read = kept + dropped + errored) that fails the job when a document went missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from data_specs.records import component_order
from filters.quality import SCORE_BINS
from pipelines.curate.core import Curated
from pipelines.curate.schema import DROP_REASONS


def empty_component_stats() -> dict[str, Any]:
    return {
        "read": 0,
        "kept": 0,
        "errored": 0,
        "dropped": {},
        "bytes_in": 0,
        "bytes_out": 0,
        "sources": {},
        "score_histogram": [0] * SCORE_BINS,
        "kept_score_histogram": [0] * SCORE_BINS,
    }


def stat_of(it: Curated) -> tuple[str, str, str, str | None, int, int, int | None]:
    """(component, source, outcome, drop_reason, bytes_in, bytes_out, score bin) of a finished item."""
    out_bytes = len(it.doc.text.encode("utf-8")) if it.outcome == "kept" else 0
    score_bin = None if it.quality_score is None else min(int(it.quality_score * SCORE_BINS), SCORE_BINS - 1)
    return it.component, it.source, it.outcome, it.drop_reason, it.text_bytes, out_bytes, score_bin


def add_read(stats: dict[str, Any], component: str, source: str, n: int) -> None:
    c = stats.setdefault(component, empty_component_stats())
    c["read"] += n
    c["sources"].setdefault(source, {"read": 0, "kept": 0})["read"] += n


def add_outcome(stats: dict[str, Any], stat: tuple) -> None:
    component, source, outcome, reason, bytes_in, bytes_out, score_bin = stat
    c = stats.setdefault(component, empty_component_stats())
    c["bytes_in"] += bytes_in
    c["bytes_out"] += bytes_out
    if outcome == "kept":
        c["kept"] += 1
        c["sources"].setdefault(source, {"read": 0, "kept": 0})["kept"] += 1
    elif outcome == "errored":
        c["errored"] += 1
    else:
        c["dropped"][reason] = c["dropped"].get(reason, 0) + 1
    if score_bin is not None:
        c["score_histogram"][score_bin] += 1
        if outcome == "kept":
            c["kept_score_histogram"][score_bin] += 1


def merge_stats(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    for component, o in other.items():
        c = into.setdefault(component, empty_component_stats())
        for k in ("read", "kept", "errored", "bytes_in", "bytes_out"):
            c[k] += o[k]
        for reason, n in o["dropped"].items():
            c["dropped"][reason] = c["dropped"].get(reason, 0) + n
        for source, s in o["sources"].items():
            t = c["sources"].setdefault(source, {"read": 0, "kept": 0})
            t["read"] += s["read"]
            t["kept"] += s["kept"]
        for k in ("score_histogram", "kept_score_histogram"):
            c[k] = [a + b for a, b in zip(c[k], o[k], strict=True)]
    return into


class ConservationError(RuntimeError):
    pass


def finish_stats(stats: Mapping[str, Any], components: Sequence[str]) -> dict[str, Any]:
    """stats.json's content, in a fixed order, after checking read == kept + sum(dropped) + errored per component
    (raises ConservationError otherwise: the job must fail, not publish)."""
    out: dict[str, Any] = {"components": {}, "drop_reasons": list(DROP_REASONS), "histogram_bins": SCORE_BINS}
    bad = []
    for component in sorted(set(components) | set(stats), key=component_order):
        c = stats.get(component) or empty_component_stats()
        dropped = {r: c["dropped"][r] for r in sorted(c["dropped"], key=reason_order)}
        total = c["kept"] + sum(dropped.values()) + c["errored"]
        if total != c["read"]:
            bad.append(f"{component}: read {c['read']} != kept {c['kept']} + dropped {sum(dropped.values())} "
                       f"+ errored {c['errored']}")
        out["components"][component] = {**c, "dropped": dropped, "sources": dict(sorted(c["sources"].items()))}
    if bad:
        raise ConservationError("curate: documents not conserved: " + "; ".join(bad))
    comps = out["components"].values()
    out["total"] = {k: sum(c[k] for c in comps) for k in ("read", "kept", "errored", "bytes_in", "bytes_out")}
    out["total"]["dropped"] = sum(sum(c["dropped"].values()) for c in comps)
    return out


def reason_order(reason: str) -> tuple[int, str]:
    return (DROP_REASONS.index(reason) if reason in DROP_REASONS else len(DROP_REASONS), reason)
