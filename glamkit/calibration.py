"""`glamkit classifier calibrate`: fit the Pareto keep rule's alpha on a run (filters/calibrate.py does the fit).

Candidates are the scores of the pages the rule will judge: with a curated stage, exactly the documents of the
mixture's quality-filtered components that reached the quality score (kept, or dropped as `quality`); before
curation, every document of those components in RUN/sources, scored now (curation would judge only those passing
its language, heuristic and dedup stages: said so in the output). The reference is the classifier's held-out
positives (RUN/classifier/reference_scores.json): curated text from groups the model never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from data_specs.errors import GlamkitError
from data_specs.specs import KeepRuleSpec, MixtureSpec
from filters.calibrate import Calibration, fit_alpha_to_keep_rate, fit_alpha_to_reference, kept_ks
from filters.keep import keep_probability
from filters.quality import load_classifier, load_reference_scores
from pipelines.curate.schema import STATS_FILE
from sources.stage import load_sources


@dataclass(frozen=True)
class Candidates:
    scores: np.ndarray
    where: str  # where the scores came from, in words


def quality_components(spec: MixtureSpec) -> list[str]:
    comps = sorted(n for n, c in spec.components.items() if c.quality_filter)
    if not comps:
        raise GlamkitError(f"mixture {spec.name}: no component has quality_filter: true, nothing to calibrate")
    return comps


def candidate_scores(run_dir: Path, spec: MixtureSpec, model_dir: Path) -> Candidates:
    comps = quality_components(spec)
    curated = run_dir / "curated"
    if (curated / STATS_FILE).exists():
        return Candidates(_curated_scores(curated, comps), f"{', '.join(comps)} documents that reached the quality "
                          f"score in {curated}")

    mixed = {n for c in spec.components.values() for n in c.sources}  # not the sources read for the classifier only
    docs = [d for name, ds in load_sources(run_dir).items() if name in mixed for d in ds if d.component in comps]
    if not docs:
        raise GlamkitError(f"{run_dir}/sources: no {', '.join(comps)} documents to calibrate on")
    scores = load_classifier(model_dir).score([d.text for d in docs]).astype(np.float64)
    return Candidates(scores, f"every {', '.join(comps)} document in {run_dir}/sources (no curated stage yet: "
                      "curation judges only those passing its language, rule and dedup stages)")


def _curated_scores(curated: Path, comps: list[str]) -> np.ndarray:
    values: list[np.ndarray] = []
    for kind in ("documents", "dropped"):
        for comp in comps:
            for part in sorted((curated / kind / comp).glob("part-*.parquet")):
                col = pq.read_table(part, columns=["quality_score"]).column("quality_score").drop_null()
                values.append(col.to_numpy().astype(np.float64))
    scores = np.concatenate(values) if values else np.zeros(0)
    if scores.size == 0:
        raise GlamkitError(f"{curated}: no document of {', '.join(comps)} reached the quality score")
    return np.sort(scores)


def calibrate_run(run_dir: Path, spec: MixtureSpec, model_dir: Path,
                  target_keep: float | None = None) -> tuple[Calibration, Candidates, np.ndarray | None]:
    """(fit, candidates, reference): to the held-out positives, or to `target_keep` if given."""
    cands = candidate_scores(run_dir, spec, model_dir)
    if target_keep is not None:
        return fit_alpha_to_keep_rate(cands.scores, target_keep), cands, None
    reference = np.asarray(load_reference_scores(model_dir), dtype=np.float64)
    return fit_alpha_to_reference(cands.scores, reference), cands, reference


def format_calibration(cal: Calibration, cands: Candidates, current: KeepRuleSpec | None,
                       reference: np.ndarray | None) -> str:
    how = (f"the kept pages' scores closest to the {cal.reference} held-out positives' (KS distance {cal.ks:.3f})"
           if cal.method == "reference_ks" else f"an expected keep rate of {cal.target_keep:.1%}")
    lines = [f"candidates: {cal.candidates:,} scores: {cands.where}",
             f"fitted alpha {cal.alpha:.3f}: {how}",
             f"keep rate at alpha {cal.alpha:.3f}: {cal.expected_keep_rate:.1%} expected "
             f"({cal.expected_keep_rate * cal.candidates:,.0f} of {cal.candidates:,})",
             "keep curve P(keep | score) = (2 - score)^-alpha:",
             "  score  " + " ".join(f"{s:>5.1f}" for s, _ in cal.curve()),
             "  P(keep)" + " ".join(f"{p:>5.3f}" for _, p in cal.curve())]
    if current is not None and current.kind == "pareto" and not current.auto:
        rate = float(keep_probability(cands.scores, current.alpha).mean())
        ks = f", KS {kept_ks(cands.scores, current.alpha, reference):.3f}" if reference is not None else ""
        lines.append(f"the mixture's rule ({current.describe()}) keeps {rate:.1%} expected{ks}")
    return "\n".join(lines)


def calibration_record(cal: Calibration, cands: Candidates) -> dict[str, Any]:
    return {**cal.to_dict(), "candidates_from": cands.where}
