"""The mixture report: what went into the mixture and why, per component. `report.json` holds the numbers,
`report.html` (report/html.py) shows them with embedded plots. The stage is report/stage.py, planning mode
(no data at all) report/plan.py.

Sources of truth, all read from the run folder: RUN/curated/stats.json (read, kept, dropped by reason, score
histograms; dedup cluster sizes once the dedup stages write them), RUN/curated/samples/dropped.jsonl.gz and the
kept documents (samples), RUN/tokenizer/tokenizer.json, RUN/shards/manifest.json and mix_stats.json (tokens
available, sampled, epochs, lengths). Nothing here holds a timestamp: the same run gives the same bytes.
"""

from __future__ import annotations

import gzip
import heapq
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from data_specs.errors import GlamkitError
from data_specs.hashing import uniform
from data_specs.records import component_order
from data_specs.specs import MixtureSpec
from filters.quality import SCORE_BINS
from pipelines.curate.plan import classifier_dir_for
from pipelines.curate.schema import SAMPLES_FILE, STATS_FILE, curated_files, iter_curated
from pipelines.dedup.config import describe as describe_dedup
from report.drops import classifier_section, drop_table, keep_sentence, per_source, repeat_warnings

SAMPLES_PER_COMPONENT = 3
EXCERPT_CHARS = 600


# ------------------------------------------------------------------------------------------------ gathering
def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise GlamkitError(f"{path} is missing: run the stage that writes it first") from None


def keep_curve(rule: Mapping[str, Any] | None, bins: int) -> list[float] | None:
    """P(keep | score) at each bin's centre for the keep rule (pareto: (2 - s)^-alpha; threshold: a step)."""
    if not rule:
        return None
    centres = [(i + 0.5) / bins for i in range(bins)]
    if rule["kind"] == "pareto" and not isinstance(rule["alpha"], (int, float)):
        return None  # alpha auto that curation never fitted (no page reached the score)
    if rule["kind"] == "pareto":
        return [round((2 - s) ** -rule["alpha"], 6) for s in centres]
    if rule["kind"] == "threshold":
        return [1.0 if s >= rule["threshold"] else 0.0 for s in centres]
    return None  # top_fraction: the cut depends on the data, shown by the empirical curve only


def kept_samples(curated_dir: Path, seed: int, k: int = SAMPLES_PER_COMPONENT) -> dict[str, list[dict[str, Any]]]:
    """k kept documents per component, chosen by uniform(doc_id, seed, 'report-sample') (same run, same picks)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for component, parts in curated_files(curated_dir).items():
        best: list[tuple[float, str, dict[str, Any]]] = []
        for part in parts:
            for batch in iter_curated(part, ("id", "source", "text", "quality_score")):
                for row in batch:
                    item = (-uniform(row["id"], seed, "report-sample"), row["id"], row)
                    if len(best) < k:
                        heapq.heappush(best, item)
                    elif item > best[0]:
                        heapq.heapreplace(best, item)
        out[component] = [_sample(row) for *_, row in sorted(best, key=lambda it: (-it[0], it[1]))]
    return out


def dropped_samples(curated_dir: Path, k: int = SAMPLES_PER_COMPONENT) -> dict[str, list[dict[str, Any]]]:
    """Up to k dropped documents per component from the curate job's samples, one reason after another."""
    path = curated_dir / SAMPLES_FILE
    if not path.exists():
        return {}
    by_reason: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            by_reason.setdefault(row["component"], {}).setdefault(row["drop_reason"], []).append(row)
    out = {}
    for component, reasons in by_reason.items():
        picked: list[dict[str, Any]] = []
        queues = [list(rows) for _, rows in sorted(reasons.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
        while len(picked) < k and any(queues):
            for q in queues:
                if q and len(picked) < k:
                    picked.append(_sample(q.pop(0)))
        out[component] = picked
    return out


def _sample(row: Mapping[str, Any]) -> dict[str, Any]:
    text = row.get("text") or ""
    score = row.get("quality_score")
    return {"id": row["id"], "source": row.get("source"), "drop_reason": row.get("drop_reason"),
            "quality_score": None if score is None else round(float(score), 4),
            "excerpt": text[:EXCERPT_CHARS], "truncated": len(text) > EXCERPT_CHARS}


def dedup_section(stats: Mapping[str, Any]) -> dict[str, Any] | None:
    """Dedup's summary from curate's stats.json; None: dedup not run."""
    return stats.get("dedup") or None


def gather(spec: MixtureSpec, run_dir: Path, curated: Path | None = None, tokenizer: Path | None = None,
           shards: Path | None = None, classifier: Path | None = None) -> dict[str, Any]:
    """report.json's content from a run folder whose curate, tokenizer and mix stages are done."""
    curated = curated or run_dir / "curated"
    tokenizer = tokenizer or run_dir / "tokenizer"
    shards = shards or run_dir / "shards"
    classifier = classifier or classifier_dir_for(spec, run_dir)
    cstats = _load_json(curated / STATS_FILE)
    manifest = _load_json(shards / "manifest.json")
    mstats = _load_json(shards / "mix_stats.json")
    tok = _load_json(tokenizer / "tokenizer.json")
    applied = _applied_rule(cstats)
    keep_rule = ({**asdict(spec.quality.keep), "alpha": applied["alpha"]} if spec.quality and applied
                 and "alpha" in applied else asdict(spec.quality.keep) if spec.quality else None)
    bins = cstats.get("histogram_bins", SCORE_BINS)
    kept = kept_samples(curated, spec.seed)
    dropped = dropped_samples(curated)
    total_train = sum(m["tokens"] for m in manifest["components"].values())
    components = {}
    for c in sorted(spec.components, key=component_order):
        cs = cstats["components"].get(c, {})
        mc = manifest["components"].get(c, {})
        ms = mstats["components"].get(c, {})
        scored = cs.get("score_histogram", [0] * bins)
        kept_hist = cs.get("kept_score_histogram", [0] * bins)
        quality = None
        if spec.components[c].quality_filter and sum(scored):
            quality = {"scored": scored, "kept": kept_hist,
                       "dropped": [a - b for a, b in zip(scored, kept_hist, strict=True)],
                       "keep_rate": [round(b / a, 6) if a else None for a, b in zip(scored, kept_hist, strict=True)]}
        components[c] = {
            "weight": spec.components[c].weight,
            "sources": list(spec.components[c].sources),
            "documents_read": cs.get("read", 0),
            "documents_kept": cs.get("kept", 0),
            "documents_errored": cs.get("errored", 0),
            "bytes_read": cs.get("bytes_in", 0),
            "bytes_kept": cs.get("bytes_out", 0),
            "drop_reasons": cs.get("dropped", {}),
            "documents_available": ms.get("documents_available", 0),
            "tokens_available": mc.get("tokens_available", 0),
            "validation": ms.get("validation", {"documents": 0, "tokens": 0}),
            "documents_sampled": mc.get("documents", 0),
            "tokens_sampled": mc.get("tokens", 0),
            "target_weight": mc.get("target_weight", spec.components[c].weight),
            "realised_weight": round(mc.get("tokens", 0) / total_train, 6) if total_train else 0.0,
            "epochs": mc.get("epochs", 0.0),
            "rate": ms.get("rate", 0.0),
            "threshold": ms.get("threshold", 0.0),
            "whole_epochs": ms.get("whole", 0),
            "length_histogram": ms.get("length_histogram", []),
            "quality": quality,
            "samples": {"kept": kept.get(c, []), "dropped": dropped.get(c, [])},
        }
    return {
        "mixture": spec.name,
        "seed": spec.seed,
        "drop_table": drop_table(spec, cstats),
        "keep_rule_applied": applied,
        "keep_sentence": keep_sentence(applied),
        "classifier": classifier_section(classifier, applied),
        "dedup_settings": describe_dedup(spec.dedup).removeprefix("dedup: "),
        "sources": per_source(spec, cstats, curated, tokenizer),
        "repeat_warnings": repeat_warnings(components),
        "budget_tokens": manifest["extra"].get("budget_tokens"),
        "seq_len": manifest["seq_len"],
        "tokenizer": {k: tok.get(k) for k in ("kind", "model_type", "pretrained", "vocab_size", "eos_id", "pad_id",
                                              "sha256")},
        "shards": {"train": _split_summary(manifest, "train"), "validation": _split_summary(manifest, "validation"),
                   "spec_hash": manifest["spec_hash"], "upstream": manifest["upstream"]},
        "length_bins": mstats.get("length_bins", []),
        "score_bins": bins,
        "keep_rule": keep_rule,
        "keep_curve": keep_curve(keep_rule, bins),
        "dedup": dedup_section(cstats),
        "warnings": manifest["extra"].get("warnings", []),
        "components": components,
        "totals": {k: sum(v[k] for v in components.values()) for k in
                   ("documents_read", "documents_kept", "tokens_available", "documents_sampled", "tokens_sampled")},
    }


def _applied_rule(cstats: Mapping[str, Any]) -> dict[str, Any] | None:
    """The keep rule curation applied (one per quality-filtered component; the first, as they share the spec's)."""
    rules = cstats.get("keep_rules") or {}
    return next(iter(rules.values()), None) if rules else None


def _split_summary(manifest: Mapping[str, Any], split: str) -> dict[str, int]:
    shards = [s for s in manifest["shards"] if s["split"] == split]
    rows = sum(s["rows"] for s in shards)
    tokens = sum(s["tokens"] for s in shards)
    return {"files": len(shards), "rows": rows, "tokens": tokens, "padding": rows * manifest["seq_len"] - tokens}
