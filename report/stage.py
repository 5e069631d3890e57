"""The recipe's `report` stage: gathers the mixture report (report/mixture.py) from the run's folders, writes
report.json and report.html into the stage folder and links RUN/report.html to it."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from data_specs import specs
from data_specs.loader import to_plain
from data_specs.stages import Stage, StageArgs, make
from report.html import render
from report.mixture import gather

STAGE_NAME = "report"
STAGE_VERSION = "2"  # 2: drop table with thresholds, per-source tokens, classifier AUCs, repeat warnings
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


def write_report(report: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / REPORT_JSON, out / REPORT_HTML)
    fileio.write_json(paths[0], report, sort_keys=True, indent=2, ensure_ascii=False)
    fileio.write_text(paths[1], render(report))
    return paths


def link_report(run_dir: Path) -> Path:
    """RUN/report.html -> report/report.html (relative symlink, replaced atomically): the path users open."""
    link = run_dir / REPORT_HTML
    fileio.replace_symlink(f"{STAGE_NAME}/{REPORT_HTML}", link)
    return link


def report_stage(ctx: Any, mixture_spec_path: str | Path, link: bool = True) -> dict[str, Any]:
    """Stage-runner entry point: reads ctx.upstream['curated'], ['tokenizer'], ['shards'] (or the run's folders),
    writes report.json and report.html into ctx.out; `link` points RUN/report.html at the published report."""
    spec = specs.load("mixtures", mixture_spec_path)
    up = {n: Path(ctx.upstream.get(n, ctx.run_dir / n)) for n in ("curated", "tokenizer", "shards")}
    report = gather(spec, ctx.run_dir, up["curated"], up["tokenizer"], up["shards"])
    write_report(report, Path(ctx.out))
    if link:
        link_report(ctx.run_dir)
    return {"html": f"{STAGE_NAME}/{REPORT_HTML}", "epochs": {c: v["epochs"] for c, v in report["components"].items()}}


NAME = STAGE_NAME
DESCRIPTION = "write the mixture stats report (report.json, report.html)"


def make_stage(args: StageArgs) -> Stage:
    """Needs `curated`, `tokenizer` and `shards` (standalone: fingerprints those folders instead)."""
    spec = specs.load("mixtures", args.mixture)
    config = {"version": STAGE_VERSION, "spec": to_plain(spec)}
    return make(NAME, partial(report_stage, mixture_spec_path=str(args.mixture)), config, args,
                needs=("curated", "tokenizer", "shards"), version=STAGE_VERSION, description=DESCRIPTION)
