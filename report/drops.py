"""The report's "what was dropped and why", in numbers: every drop reason in stage order with the setting that
decided it, the keep rule in one sentence, the classifier's and dedup's settings, kept documents and tokens per
source, and a warning wherever a component's training tokens come from few documents repeated many times.

A drop reason is the name of the knob that dropped the document (RulesSpec fields, the dedup reasons, `quality`),
so each row's threshold is read from the mixture spec (or, for the keep rule, from what curation applied).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from data_specs.records import component_order
from data_specs.specs import MixtureSpec, RulesSpec
from data_specs.tokenizer import load_tokenizer
from filters.classifier_eval import auc_line
from filters.dedup import implied_threshold
from pipelines.curate.schema import (
    CONTAMINATED,
    DROP_REASONS,
    EVAL_HOLDOUT_REASON,
    EXACT_DUPLICATE,
    NEAR_DUPLICATE,
    QUALITY_REASON,
    curated_files,
    iter_curated,
)

REPEAT_WARN_EPOCHS = 4.0  # a component whose tokens are repeated more often than this gets a warning line
STAGES = {EVAL_HOLDOUT_REASON: "eval holdout", "language": "language", "min_language_score": "language",
          EXACT_DUPLICATE: "dedup", NEAR_DUPLICATE: "dedup", CONTAMINATED: "decontamination",
          QUALITY_REASON: "quality"}  # every other reason is a heuristic rule (filters/rules.py)
_RULE_FIELDS = {f.name for f in fields(RulesSpec)}


def stage_of(reason: str) -> str:
    return STAGES.get(reason, "heuristic rules" if reason in _RULE_FIELDS else "other")


def threshold(reason: str, spec: MixtureSpec, component: str, keep_rules: Mapping[str, Any]) -> str:
    """The setting that decides `reason` for `component`, in words."""
    rules, d = spec.rules_for(component), spec.dedup
    if reason == EVAL_HOLDOUT_REASON:
        return f"{spec.eval_holdout_fraction:.0%} of documents held out for eval tasks"
    if reason == "language":
        return f"language ID in {{{', '.join(rules.languages)}}}"
    if reason in _RULE_FIELDS:
        return f"{reason} = {getattr(rules, reason):g}"
    if reason == "exact_duplicate":
        return "same normalised text" if d.exact else "off"
    if reason == "near_duplicate":
        verify = f", verified at Jaccard >= {d.min_similarity:g}" if d.min_similarity else ""
        return (f"MinHash {d.ngram}-grams, {d.bands} x {d.rows} (J ~ {implied_threshold(d.bands, d.rows):.2f})"
                f"{verify}")
    if reason == "contaminated":
        common = d.decontaminate_common_documents
        return f"shares a {d.decontaminate_ngram}-gram with a task" + (f" (not one in > {common} docs)" if common
                                                                            else "")
    if reason == QUALITY_REASON:
        applied = keep_rules.get(component)
        if not applied:
            return spec.quality.keep.describe() if spec.quality else ""
        return applied["applied"] + (f" ({applied['rule']})" if applied["rule"] != applied["applied"] else "")
    return ""


def drop_table(spec: MixtureSpec, cstats: Mapping[str, Any]) -> dict[str, Any]:
    """Rows in stage order (reasons that dropped nothing anywhere left out), each with its stage, its threshold
    per component and the count per component; `errored` (the dead letter) apart. Column sums are the curate
    stats' dropped counts."""
    comps = sorted(spec.components, key=component_order)
    by_comp = cstats.get("components", {})
    keep_rules = cstats.get("keep_rules", {})
    seen = {r for c in comps for r in by_comp.get(c, {}).get("dropped", {})}
    reasons = [r for r in DROP_REASONS if r in seen] + sorted(seen - set(DROP_REASONS))
    rows = []
    for reason in reasons:
        counts = {c: by_comp.get(c, {}).get("dropped", {}).get(reason, 0) for c in comps}
        per = {c: threshold(reason, spec, c, keep_rules) for c in comps if counts[c]}
        rows.append({"stage": stage_of(reason), "reason": reason, "counts": counts, "total": sum(counts.values()),
                     "thresholds": per, "threshold": _shared(per)})
    return {"components": comps, "rows": rows,
            "errored": {c: by_comp.get(c, {}).get("errored", 0) for c in comps},
            "dropped": {c: sum(by_comp.get(c, {}).get("dropped", {}).values()) for c in comps}}


def _shared(per: Mapping[str, str]) -> str:
    """One threshold if every component that dropped for it shares it, else 'component: value' pairs."""
    values = sorted(set(per.values()))
    if len(values) <= 1:
        return values[0] if values else ""
    return "; ".join(f"{c}: {v}" for c, v in per.items())


def keep_sentence(applied: Mapping[str, Any] | None) -> str:
    """The keep rule's curve in one sentence, with the alpha curation applied."""
    if not applied:
        return "No component is quality-filtered."
    if applied.get("kind") == "pareto":
        a = float(applied["alpha"])
        fitted = ""
        cal = applied.get("calibration")
        if cal:
            fitted = (f" (fitted: kept pages' scores closest to the held-out positives', KS {cal['ks']:.3f})"
                      if cal["method"] == "reference_ks" else f" (fitted to keep {cal['target_keep']:.0%})")
        return (f"Pareto keep rule, alpha {a:.3g}{fitted}: a page scoring s is kept with probability (2 - s)^-{a:.3g}, "
                f"so {2 ** -a:.1%} of pages scoring 0 survive, {1.5 ** -a:.1%} at 0.5 and every page at 1: low "
                "scores are thinned, not cut, which keeps some pages the classifier misjudges.")
    if applied.get("kind") == "threshold":
        return f"Threshold keep rule: a page is kept iff its score is at least the threshold ({applied['applied']})."
    return f"Top-fraction keep rule ({applied['applied']}): the best-scoring pages of the component are kept."


def repeat_warnings(components: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """'web: 42% of training tokens from 41 documents, 8.5 epochs' for each component repeated > REPEAT_WARN_EPOCHS
    times: its tokens are memorised rather than learned from."""
    out = []
    for c, v in components.items():
        if v["epochs"] > REPEAT_WARN_EPOCHS:
            out.append(f"{c}: {v['realised_weight']:.0%} of training tokens from {v['documents_available']:,} "
                       f"documents, {v['epochs']:.1f} epochs")
    return out


def per_source(spec: MixtureSpec, cstats: Mapping[str, Any], curated: Path, tokenizer: Path) -> dict[str, Any]:
    """Per source: component, documents read and kept by curation, and the kept documents' tokens."""
    sp = load_tokenizer(tokenizer).processor()
    tokens: dict[str, int] = {}
    for parts in curated_files(curated).values():
        for part in parts:
            for batch in iter_curated(part, ("source", "text")):
                for row, ids in zip(batch, sp.encode([r["text"] for r in batch]), strict=True):
                    tokens[row["source"]] = tokens.get(row["source"], 0) + len(ids)
    out = {}
    for c in sorted(spec.components, key=component_order):
        for source in spec.components[c].sources:
            s = cstats.get("components", {}).get(c, {}).get("sources", {}).get(source, {"read": 0, "kept": 0})
            out[source] = {"component": c, "read": s["read"], "kept": s["kept"], "tokens_kept": tokens.get(source, 0)}
    return out


def classifier_section(classifier_dir: Path | None, applied: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The classifier's settings and honest AUCs (eval.json), and per component the keep rate the applied rule
    would give (expected, from the score quantiles eval.json keeps), or None without a classifier."""
    if classifier_dir is None or not (classifier_dir / "eval.json").exists():
        return None
    ev = json.loads((classifier_dir / "eval.json").read_text())
    side = json.loads((classifier_dir / "classifier.json").read_text())
    expected = {}
    if applied and applied.get("kind") == "pareto":
        a = float(applied["alpha"])
        for comp, v in ev.get("components", {}).items():
            qs = v.get("quantiles") or []
            if qs:  # mean of P(keep) over the quantile grid ~ the expected keep rate
                expected[comp] = round(sum((2 - q) ** -a for q in qs) / len(qs), 4)
    return {"spec": side.get("spec"), "backend": side.get("backend"), "features": side.get("features"),
            "split": ev.get("heldout_split"), "aucs": auc_line(ev), "roc_auc": ev.get("roc_auc"),
            "worst_leave_one_source_out": ev.get("worst_leave_one_source_out"),
            "worst_web_leave_one_source_out": ev.get("worst_web_leave_one_source_out"),
            "leave_one_source_out_roc_auc": ev.get("leave_one_source_out_roc_auc", {}),
            "expected_keep_rate": expected}
