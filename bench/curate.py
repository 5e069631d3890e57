"""Benchmark the curate job on the real demo corpora (2 cores): docs/s, MB/s and peak RSS of the whole process tree.

    (a) the curate job on Beam's embedded in-process runner (and, as an extra row, 2 multi-processing workers)
    (b) the same filters/ calls, in the same order and batch sizes, as a plain Python loop (the limit), writing the
        same sorted Parquet shards
    (c) datatrove's closest equivalent on the same documents: JsonlReader -> GopherQualityFilter ->
        FastTextClassifierFilter (the same fastText model) -> JsonlWriter, 2 tasks on 2 workers

Targets: (a) within 25% of (b)'s docs/s; (a) at least 5x (c)'s docs/s. Also prints what each keeps per component.

    python bench/curate.py                          # builds runs/bench-curate (sources + classifier) if missing
    python bench/curate.py --datatrove-python .bench-venv/bin/python
    python bench/curate.py --skip-datatrove

`make bench` builds .bench-venv with datatrove (bench/requirements-datatrove.txt) and fails if it cannot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from process_tree import measure_tree  # noqa: E402  (bench/ is this script's folder)

BATCH = 256

DATATROVE = r"""
import json, sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.filters import GopherQualityFilter, FastTextClassifierFilter
from datatrove.pipeline.writers import JsonlWriter

sources, model, out, logs = sys.argv[1:5]
pipeline = [
    JsonlReader(sources, glob_pattern="*.jsonl.gz", text_key="text", id_key="id"),
    GopherQualityFilter(min_doc_words=50, max_doc_words=100_000),
    FastTextClassifierFilter(model_url=model, keep_labels=[("hq", 0.5)]),
    JsonlWriter(out, compression=None),
]
LocalPipelineExecutor(pipeline=pipeline, tasks=2, workers=2, logging_dir=logs).run()
"""


# ------------------------------------------------------------------------------------------------ set-up
def ensure_run(run: Path) -> Path:
    """RUN/sources (the sources code, real demo corpora) and RUN/classifier (the demo classifier spec)."""
    from data_specs import specs
    from filters.classifier_train import train
    from sources.resolve import fetch_sources, mixture_sources
    from sources.stage import load_sources, read_sources

    if not (run / "sources" / "stats.json").exists():
        sources = mixture_sources("demo")
        state = fetch_sources(sources)
        unavailable = {n: s for n, s in state.items() if s.startswith("unavailable")}
        read_sources(sources, run / "sources", unavailable, workers=2)
    if not (run / "classifier" / "classifier.json").exists():
        train(specs.load("classifier", "demo"), load_sources(run), run / "classifier")
    return run


def corpus_size(run: Path) -> tuple[int, int]:
    from data_specs.records import read_documents
    from sources.stage import source_files

    docs = size = 0
    for path in source_files(run).values():
        for d in read_documents(path):
            docs += 1
            size += len(d.text.encode("utf-8"))
    return docs, size


# ------------------------------------------------------------------------------------------------ modes
def _without_dedup(spec):
    """Dedup is a whole-corpus stage with its own bench (bench/dedup.py); here the job and the loop make the same
    per-document filters/ calls: decode, eval holdout, normalise, language, rules, score, keep."""
    from dataclasses import replace

    return replace(spec, dedup=replace(spec.dedup, exact=False, near=False, decontaminate=False))


def mode_job(run: Path, out: Path, beam_args: list[str]) -> dict:
    from data_specs import specs
    from pipelines.curate.job import curate

    stats = curate(_without_dedup(specs.load("mixtures", "demo")), run, out, beam_args, batch_size=BATCH)
    return {c: v["kept"] for c, v in stats["components"].items()}


def mode_loop(run: Path, out: Path) -> dict:
    """(b): the job's filters/ calls in the job's order and batch sizes, in one plain Python loop."""
    from data_specs import specs
    from filters.quality import load_classifier
    from pipelines.curate import core, schema
    from pipelines.curate.plan import DEFAULT_SHARDS, classifier_dir_for, make_plan

    spec = _without_dedup(specs.load("mixtures", "demo"))
    plan = make_plan(spec, run / "sources", classifier_dir_for(spec, run), out, batch_size=BATCH)
    clf = load_classifier(plan.classifier_dir)
    finished: list = []
    to_score: list = []
    for split in plan.splits:
        for raws in core.read_split(split, BATCH):
            for item in core.pre_dedup(raws, plan.rules, (plan.seed, plan.eval_holdout_fraction)):
                (to_score if item.alive and item.component in plan.quality_components else finished).append(item)
    scored: list = []
    for i in range(0, len(to_score), BATCH):
        scored += core.score_batch(to_score[i : i + BATCH], clf)
    for comp in plan.quality_components:  # as the job: alpha auto / top_fraction fitted on the component's scores
        items = [it for it in scored if it.component == comp]
        fit = (core.fit_keep([(it.doc.id, it.quality_score) for it in items], plan.keep, plan.reference_scores)
               if items and core.needs_fit(plan.keep) else None)
        for i in range(0, len(items), BATCH):
            finished += core.apply_keep(items[i : i + BATCH], fit.rule if fit else plan.keep,
                                        fit.cutoff if fit else None)
    shards: dict = {(c, s): ([], []) for c in plan.components for s in range(DEFAULT_SHARDS)}
    for it in finished:
        if it.outcome != "errored":
            shards[(it.component, core.shard_of(it.doc.id, DEFAULT_SHARDS))][it.outcome == "dropped"].append(it)
    for (component, shard), (kept, dropped) in shards.items():
        name = schema.shard_name(DEFAULT_SHARDS, shard)
        kept.sort(key=core.sort_key)
        dropped.sort(key=core.sort_key)
        core.write_table_atomic(f"{out}/documents/{component}/{name}", core.curated_table(kept))
        core.write_table_atomic(f"{out}/dropped/{component}/{name}", core.dropped_table(dropped))
    kept_by: dict[str, int] = {c: 0 for c in plan.components}
    for it in finished:
        kept_by[it.component] += it.outcome == "kept"
    return kept_by


def mode_datatrove(run: Path, out: Path, python: str) -> dict:
    logs = out / "logs"
    proc = subprocess.run([python, "-c", DATATROVE, str(run / "sources"), str(run / "classifier" / "model.bin"),
                           str(out / "docs"), str(logs)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"datatrove failed:\n{proc.stderr[-3000:]}")
    kept: dict[str, int] = {}
    for path in sorted((out / "docs").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            component = json.loads(line).get("metadata", {}).get("component", "?")
            kept[component] = kept.get(component, 0) + 1
    return kept


# ------------------------------------------------------------------------------------------------ measuring
def measure(cmd: list[str]) -> tuple[float, float, float, dict]:
    return measure_tree(cmd)

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "bench-curate")
    parser.add_argument("--datatrove-python", default=str(REPO / ".bench-venv" / "bin" / "python"))
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--mode", choices=["job", "job2", "loop", "datatrove"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.mode:  # a measured child
        if args.mode == "job":
            kept = mode_job(args.run, args.out, [])
        elif args.mode == "job2":
            kept = mode_job(args.run, args.out, ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
        elif args.mode == "loop":
            kept = mode_loop(args.run, args.out)
        else:
            kept = mode_datatrove(args.run, args.out, args.datatrove_python)
        Path(args.result).write_text(json.dumps(kept))
        return 0

    if not args.skip_datatrove and not Path(args.datatrove_python).exists():
        raise SystemExit(f"{args.datatrove_python}: no datatrove virtualenv (`make bench` builds .bench-venv), "
                         "or pass --skip-datatrove")
    run = ensure_run(args.run)
    docs, size = corpus_size(run)
    modes = [("(a) curate job, embedded runner (1 process)", "job"), ("(a') curate job, 2 workers", "job2"),
             ("(b) plain loop, same filters/ calls", "loop")]
    if not args.skip_datatrove:
        modes.append(("(c) datatrove: Jsonl + Gopher + fastText", "datatrove"))
    rows = []
    with tempfile.TemporaryDirectory(dir=run) as tmp:
        for label, mode in modes:
            out = Path(tmp) / mode
            cmd = [sys.executable, __file__, "--run", str(run), "--mode", mode, "--out", str(out),
                   "--datatrove-python", args.datatrove_python]
            seconds, cpu, rss, kept = measure(cmd)
            shutil.rmtree(out, ignore_errors=True)
            rows.append((label, mode, seconds, cpu, rss, kept))
            print(f"  {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    print(f"\ncurate benchmark: {docs} documents, {size / 1e6:.1f} MB of text, {os.cpu_count()} cores, "
          f"load average {load:.1f} at the end\n")
    print("| run | wall s | docs/s | MB/s | CPU s | docs per CPU s | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, _, seconds, cpu, rss, _ in rows:
        print(f"| {label} | {seconds:.1f} | {docs / seconds:.0f} | {size / 1e6 / seconds:.2f} | {cpu:.1f} | "
              f"{docs / cpu:.0f} | {rss:.0f} |")
    rate = {mode: docs / seconds for _, mode, seconds, *_ in rows}
    per_cpu = {mode: docs / cpu for _, mode, _, cpu, *_ in rows}
    print(f"\n(a) / (b) docs/s: {rate['job'] / rate['loop']:.2f}, per CPU second "
          f"{per_cpu['job'] / per_cpu['loop']:.2f} (target >= 0.75)")
    if "datatrove" in rate:
        print(f"(a) / (c) docs/s: {rate['job'] / rate['datatrove']:.1f}x (target >= 5x); (a') / (c): "
              f"{rate['job2'] / rate['datatrove']:.1f}x")
    comps = sorted({c for *_, kept in rows for c in kept})
    print("\nkept per component:\n")
    print("| run | " + " | ".join(comps) + " |")
    print("|---|" + "---:|" * len(comps))
    for label, *_, kept in rows:
        print(f"| {label} | " + " | ".join(str(kept.get(c, 0)) for c in comps) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
