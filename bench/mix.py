"""Benchmark the mixing job on the real curated demo corpora: tokenization inside the Beam job against SentencePiece's
own batch `encode` of the same texts (the limit; target >= 70%), the whole job's throughput, and shard write MB/s
against pyarrow writing the same, already built tables. Ratios are against baselines measured in the same run.

    python bench/mix.py                       # uses runs/demo (after `make demo`), else builds runs/bench-mix
    python bench/mix.py --run runs/demo --repeat 3

Needs RUN/curated and RUN/tokenizer; a missing one is built with the recipe's code (sources, classifier, curate,
tokenizer), which takes a few minutes once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPEC = "demo"


# ------------------------------------------------------------------------------------------------ set-up
def ensure_run(run: Path) -> Path:
    """RUN/curated and RUN/tokenizer, built with the recipe's code if missing."""
    from data_specs import specs
    from data_specs.stages import RunLayout, StageArgs
    from glamkit.commands import mix as mix_cli
    from pipelines import tokenizer
    from pipelines.curate import stage as curate_stage

    spec = specs.spec_path("mixtures", SPEC)
    if not (run / "curated" / "stats.json").exists():
        from filters.classifier_train import train
        from sources.resolve import fetch_sources, mixture_sources
        from sources.stage import load_sources, read_sources

        sources = mixture_sources(SPEC)
        fetch_sources(sources)
        if not (run / "sources" / "stats.json").exists():
            read_sources(sources, run / "sources", workers=2)
        if not (run / "classifier").exists():
            train(specs.load("classifier", SPEC), load_sources(run), run / "classifier")
        RunLayout(run, [curate_stage.make_stage(StageArgs(spec, run_dir=run, standalone=True))]).run()
    if not (run / "tokenizer" / "tokenizer.json").exists():
        mix_cli.run_stage(run, spec, tokenizer, force=False)
    return run


def load_texts(curated: Path) -> list[tuple[str, str, str]]:
    import pyarrow.parquet as pq

    from pipelines.curate.schema import curated_files
    from pipelines.mix.job import read_part

    docs = []
    for component, files in curated_files(curated).items():
        for path in files:
            with pq.ParquetFile(path) as f:
                groups = f.num_row_groups
            for g in range(groups):
                for batch in read_part((component, str(path), g)):
                    docs.extend(batch)
    return docs


# ------------------------------------------------------------------------------------------------ measures
def baseline_encode(model: bytes, texts: list[str], scale: int) -> tuple[int, float]:
    """SentencePiece's batch encode of every text in one call (`scale` times): the limit."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    start = time.perf_counter()
    tokens = sum(len(x) for _ in range(scale) for x in sp.encode(texts))
    return tokens, time.perf_counter() - start


def empty_pipeline() -> float:
    """Seconds Beam's in-process runner takes to start and finish a pipeline that does nothing."""
    import apache_beam as beam

    from pipelines.beam.options import pipeline_options

    start = time.perf_counter()
    pipeline = beam.Pipeline(options=pipeline_options([]))
    _ = pipeline | beam.Create(list(range(48))) | beam.Reshuffle() | beam.CombineGlobally(sum)
    pipeline.run().wait_until_finish()
    return time.perf_counter() - start


def job_tokenize(spec, run: Path, out: Path, beam_args: list[str], scale: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """The mix job's own reshuffle -> read -> tokenize transforms on the job's runner (every row group `scale`
    times), counting tokens."""
    import apache_beam as beam

    from pipelines.beam.options import pipeline_options
    from pipelines.mix import job as mix

    job = mix.make_job(spec, run / "curated", run / "tokenizer", out)
    out.mkdir(parents=True, exist_ok=True)
    count_file = out / "tokens.json"

    def write_count(n: int) -> None:
        count_file.write_text(json.dumps(n))

    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    (
        pipeline
        | "Parts" >> beam.Create(list(job.parts) * scale)
        | "Spread" >> beam.Reshuffle()
        | "Read" >> beam.FlatMap(mix.read_part)
        | "Tokenize" >> beam.ParDo(mix._Tokenize(job))
        | "Len" >> beam.Map(lambda d: len(d[3]) - 1)
        | "Sum" >> beam.CombineGlobally(sum)
        | "Out" >> beam.Map(write_count)
    )
    start = time.perf_counter()
    pipeline.run().wait_until_finish()
    seconds = time.perf_counter() - start
    return json.loads(count_file.read_text()), seconds


def whole_job(spec, run: Path, out: Path, beam_args: list[str]) -> tuple[int, float, int]:  # type: ignore[no-untyped-def]
    from pipelines.mix import job as mix

    start = time.perf_counter()
    manifest = mix.mix(spec, run / "curated", run / "tokenizer", out, beam_args)
    seconds = time.perf_counter() - start
    tokens = sum(manifest["extra"]["split_tokens"].values())
    size = sum(p.stat().st_size for p in out.glob("*.arrow"))
    return tokens, seconds, size


def shard_writes(shards: Path, out: Path) -> tuple[float, float, int]:
    """Seconds to build + write every shard from packed rows (the job's code) vs pyarrow writing ready tables."""
    import pyarrow as pa

    from pipelines.mix import rows as packing

    rows_per_file = []
    for path in sorted(shards.glob("*.arrow")):
        with pa.memory_map(str(path)) as f:
            t = pa.ipc.open_file(f).read_all()
        cols = [t.column(n).to_pylist() for n in ("tokens", "segment_ids", "positions")]
        import numpy as np

        rows_per_file.append([(np.asarray(a, np.int32), np.asarray(b, np.int32), np.asarray(c, np.int32), d, e)
                              for a, b, c, d, e in zip(*cols, t.column("segment_doc_ids").to_pylist(),
                                                       t.column("segment_components").to_pylist(), strict=True)])
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tables = []
    for i, rows in enumerate(rows_per_file):
        table = packing.rows_table(rows)
        packing.write_ipc(str(out / f"job-{i}.arrow"), table)
        tables.append(table)
    job_s = time.perf_counter() - start
    start = time.perf_counter()
    for i, table in enumerate(tables):
        with pa.OSFile(str(out / f"raw-{i}.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
    raw_s = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.glob("job-*.arrow"))
    return job_s, raw_s, size


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=None, help="run folder with curated/ and tokenizer/")
    p.add_argument("--repeat", type=int, default=2, help="best of N for each measure (default 2)")
    p.add_argument("--skip-workers", action="store_true", help="skip the 2-worker job row")
    p.add_argument("--scale", type=int, default=4, help="tokenize the corpus N times in the tokenize rows, so "
                   "Beam's fixed start-up cost (its own row) weighs as little as it does on real data (default 4)")
    args = p.parse_args(argv)

    from data_specs import specs

    run = args.run or (REPO / "runs" / "demo" if (REPO / "runs/demo/curated/stats.json").exists()
                       else REPO / "runs" / "bench-mix")
    ensure_run(run)
    spec = specs.load("mixtures", SPEC)
    docs = load_texts(run / "curated")
    texts = [t for _, _, t in docs]
    mb_text = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    model = (run / "tokenizer" / "tokenizer.model").read_bytes()

    def best(fn, *a):  # type: ignore[no-untyped-def]
        results = [fn(*a) for _ in range(args.repeat)]
        return min(results, key=lambda r: r[1])

    scale = args.scale
    base_tokens, base_s = best(baseline_encode, model, texts, scale)
    corpus_tokens = base_tokens // scale
    base_rate = base_tokens / base_s
    rows = [(f"SentencePiece batch encode, one call per pass (baseline), x{scale}", base_rate, "tokens/s",
             1.0)]
    tmp = Path(tempfile.mkdtemp(prefix="glamkit-bench-mix-"))
    try:
        job_tokens, job_s = best(lambda: job_tokenize(spec, run, tmp / "tok", [], scale))
        assert job_tokens == base_tokens, (job_tokens, base_tokens)
        rows.append((f"mix job: reshuffle + read + tokenize (FnApiRunner), x{scale}", job_tokens / job_s, "tokens/s",
                     (job_tokens / job_s) / base_rate))
        startup = min(empty_pipeline() for _ in range(args.repeat))
        rows.append(("Beam FnApiRunner start + finish, empty pipeline", startup, "s", float("nan")))
        tokens, whole_s, size = best(lambda: _fresh(whole_job, spec, run, tmp / "whole", []))
        rows.append(("whole mix job, curated -> shards (FnApiRunner), x1", corpus_tokens / whole_s, "tokens/s",
                     (corpus_tokens / whole_s) / base_rate))
        if not args.skip_workers:
            workers = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
            _, w_s, _ = best(lambda: _fresh(whole_job, spec, run, tmp / "whole2", workers))
            rows.append(("whole mix job, 2 worker processes, x1", corpus_tokens / w_s, "tokens/s",
                         (corpus_tokens / w_s) / base_rate))
        job_w, raw_w, wsize = min((shard_writes(tmp / "whole", tmp / f"w{i}") for i in range(args.repeat)),
                                  key=lambda r: r[0])
        rows.append(("shard write: pyarrow write of built tables (baseline)", wsize / 1e6 / raw_w, "MB/s", 1.0))
        rows.append(("shard write: rows -> table -> IPC file (job code)", wsize / 1e6 / job_w, "MB/s", raw_w / job_w))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"mix benchmark: {len(texts):,} curated documents, {mb_text:.1f} MB of text, {corpus_tokens:,} tokens "
          f"(vocabulary {spec.tokenizer.vocab_size}); job output {tokens:,} tokens, {size / 1e6:.1f} MB of shards; "
          f"best of {args.repeat}")
    print(f"| {'measure':<66} | {'value':>12} | {'unit':<8} | {'vs baseline':>11} |")
    print(f"|{'-' * 68}|{'-' * 14}|{'-' * 10}|{'-' * 13}|")
    for name, value, unit, ratio in rows:
        shown = "" if ratio != ratio else f"{ratio:.0%}"
        print(f"| {name:<66} | {value:>12,.1f} | {unit:<8} | {shown:>11} |")
    tok_ratio = rows[1][3]
    print(f"in-job tokenization at {tok_ratio:.0%} of SentencePiece's batch encode (target >= 70%): "
          f"{'ok' if tok_ratio >= 0.7 else 'BELOW TARGET'}")
    return 0


def _fresh(fn, spec, run: Path, out: Path, beam_args: list[str]):  # type: ignore[no-untyped-def]
    shutil.rmtree(out, ignore_errors=True)
    return fn(spec, run, out, beam_args)


if __name__ == "__main__":
    sys.exit(main())
