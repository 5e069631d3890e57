"""Which documents are held out for evaluation: decided once, by the document's id, before curation.

The `tasks` stage builds eval tasks from exactly these documents and the curate job drops them (`eval_holdout`),
so held-out text reaches no training mixture whatever the filters do.
"""

from __future__ import annotations

from data_specs.hashing import uniform


def is_eval_holdout(doc_id: str, seed: int, fraction: float) -> bool:
    return fraction > 0 and uniform(doc_id, seed, "eval-holdout") < fraction
