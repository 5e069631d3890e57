"""Planning mode of the mixture report (`glamkit report --plan SPEC --budget 600B`): table 3 of the paper from the
spec's component sizes, and each component's epochs at the budget. Needs no data."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.specs import MixtureSpec

# ------------------------------------------------------------------------------------------------ budget
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_tokens(text: str | int) -> int:
    """'600B', '1.6T', '4M', '4000000' -> a token count."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([KMBGT]?)\s*", str(text), re.IGNORECASE)
    if not m:
        raise GlamkitError(f"budget {text!r}: expected a token count like 600B, 1.6T, 4M or 4000000")
    return round(float(m.group(1)) * _SUFFIX[m.group(2).upper()])


def format_tokens(n: float) -> str:
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


# ------------------------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class PlanRow:
    component: str
    tokens_b: float  # the component's size (the paper's table 3)
    weight: float
    tokens_at_budget_b: float
    epochs: float


def plan(components: Mapping[str, tuple[float | None, float]], budget: int) -> list[PlanRow]:
    """From (tokens_b, weight) per component and a budget: the tokens each component gets and its epochs."""
    rows = []
    for name, (size_b, weight) in components.items():
        if not size_b:
            raise GlamkitError(f"component {name!r} has no tokens_b (its size in billions of tokens) in the spec")
        at_budget = weight * budget / 1e9
        rows.append(PlanRow(name, float(size_b), weight, at_budget, at_budget / size_b))
    return rows


def format_epochs(epochs: float) -> str:
    """12.0, 1.76, 0.97, 0.049: three figures at or above 1, two below (the precision the paper's sizes carry)."""
    if epochs >= 10:
        return f"{epochs:.1f}"
    if epochs >= 1:
        return f"{epochs:.2f}"
    return f"{epochs:.2g}"


def plan_table(rows: Iterable[PlanRow], budget: int) -> str:
    rows = list(rows)
    lines = [f"GLaM mixture plan at a budget of {format_tokens(budget)} tokens", "",
             "| component | tokens (B) | weight | tokens at budget (B) | epochs |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.component} | {r.tokens_b:g} | {r.weight:.2f} | {r.tokens_at_budget_b:.3g} | "
                     f"{format_epochs(r.epochs)} |")
    total = sum(r.tokens_b for r in rows)
    lines.append(f"| total | {total:g} | {sum(r.weight for r in rows):.2f} | {budget / 1e9:.3g} | |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ report
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
