"""Planning mode of the mixture report (`glamkit report --plan SPEC --budget 600B`): table 3 of the paper from the
spec's component sizes, and each component's epochs at the budget. Needs no data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from data_specs.specs import MixtureSpec
from pipelines.mix.rates import parse_tokens, plan, plan_table


def plan_report(spec: MixtureSpec, budget: str | int) -> tuple[dict[str, Any], str]:
    """Planning mode: table 3 from the spec's component sizes (tokens_b) and, per component, epochs at the budget."""
    tokens = parse_tokens(budget)
    rows = plan({c: (s.tokens_b, s.weight) for c, s in spec.components.items()}, tokens)  # the spec's order
    data = {"mixture": spec.name, "budget_tokens": tokens, "components": [asdict(r) for r in rows]}
    return data, plan_table(rows, tokens)


def save_plan(data: Mapping[str, Any], table: str, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / f"{stem}.json", out_dir / f"{stem}.md")
    fileio.write_json(paths[0], data, sort_keys=True, indent=2)
    fileio.write_text(paths[1], table)
    return paths
