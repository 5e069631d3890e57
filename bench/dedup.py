"""Benchmark near-dedup at 1x, 4x and 16x input against datatrove's MinHash pipeline, on the real demo corpora.

Input (built once under RUN/dedup-bench/, from RUN/sources: the sources code on the real packaged corpora):
    1x  = every real document (text cut at --max-chars) + a perturbed copy of 20% of them (`~p` ids)
    Nx  = 1x + N-1 replicas: every real document again, perturbed (`~k` ids; per document an edit rate from
          {0 (whitespace only), 1%, 3%, 10%, 30%} of words replaced, whitespace shuffled), one file per replica
Both systems: word 5-gram shingles, 16 bands x 8 rows (112 -> 128 permutations for glamkit), no verification.

    (g)  glamkit's dedup job (pipelines.dedup.job.dedup_files_job: signatures, exact + LSH buckets, connected
         components in Beam, survivors re-read and written), in-process runner; also 2 workers at 1x and 4x
    (d)  datatrove 0.10.1: JsonlReader -> MinhashDedupSignature -> Buckets -> Cluster -> Filter -> JsonlWriter,
         2 tasks on 2 workers (its side virtualenv, .bench-venv)

Measured: wall seconds, docs/s, peak RSS of the whole process tree (sampled every 50 ms), documents removed, and the
survivors: whether the survivors among the 1x documents are the same at 1x and at 4x (the 4x input holds the 1x
files unchanged; glamkit's rule: component priority, then smallest id; datatrove's: whichever root its union by size
picks), and whether 1 and 2 glamkit workers agree.

    python bench/dedup.py                                   # RUN = runs/bench-dedup (sources read if missing)
    python bench/dedup.py --scales 1 4 --skip-datatrove
"""

from __future__ import annotations

import argparse
import gzip
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

RATES = (0.0, 0.01, 0.03, 0.1, 0.3)
SHARDS = 2  # files per replica
VOCAB = ("river", "window", "copper", "seven", "quietly", "garden", "market", "yellow", "winter", "paper", "silver",
         "engine", "letter", "island", "honest", "basket")

DATATROVE = r"""
import glob, json, struct, sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.dedup import MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.hashing import HashConfig

inp, work = sys.argv[1:3]
tasks = 2
cfg = MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8, hash_config=HashConfig(precision=64))
reader = lambda: JsonlReader(inp, glob_pattern="*.jsonl.gz", text_key="text", id_key="id")
s1 = LocalPipelineExecutor([reader(), MinhashDedupSignature(f"{work}/sigs", config=cfg)], tasks=tasks, workers=2,
                           logging_dir=f"{work}/logs/s1")
s2 = LocalPipelineExecutor([MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=cfg)],
                           tasks=cfg.num_buckets, workers=2, logging_dir=f"{work}/logs/s2", depends=s1)
s3 = LocalPipelineExecutor([MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=cfg)], tasks=1,
                           logging_dir=f"{work}/logs/s3", depends=s2)
s4 = LocalPipelineExecutor([reader(), MinhashDedupFilter(f"{work}/remove"),
                            JsonlWriter(f"{work}/out", compression=None)],
                           tasks=tasks, workers=2, logging_dir=f"{work}/logs/s4", depends=s3)
s4.run()
pairs = sum(1 for f in glob.glob(f"{work}/buckets/*.dups") for _ in iter(lambda fh=open(f, "rb"): fh.read(16), b""))
kept = [json.loads(line)["id"] for f in sorted(glob.glob(f"{work}/out/*.jsonl")) for line in open(f)]
json.dump({"pairs": pairs, "kept": kept}, open(f"{work}/result.json", "w"))
"""


# ------------------------------------------------------------------------------------------------ input
def ensure_sources(run: Path) -> Path:
    from sources.resolve import fetch_sources, mixture_sources
    from sources.stage import read_sources

    if not (run / "sources" / "stats.json").exists():
        sources = mixture_sources("demo")
        state = fetch_sources(sources)
        unavailable = {n: s for n, s in state.items() if s.startswith("unavailable")}
        read_sources(sources, run / "sources", unavailable, workers=2)
    return run


def _perturbed(text: str, rate: float, seed_key: str) -> str:
    import numpy as np

    from data_specs.hashing import uniform

    rng = np.random.default_rng(int(uniform(seed_key, 0, "bench-dedup") * 2**53))
    words = text.split()
    if not words:
        return text
    change = rng.random(len(words)) < rate
    picks = rng.integers(0, len(VOCAB), len(words))
    seps = rng.choice(np.array([" ", "  ", "\n", " \t "]), len(words), p=[0.85, 0.05, 0.05, 0.05])
    return "".join((VOCAB[p] if c else w) + s for w, c, p, s in zip(words, change, picks, seps, strict=True)).strip()


def build_inputs(run: Path, scales: list[int], max_chars: int) -> dict[int, Path]:
    """RUN/dedup-bench/<N>x/: JSONL.gz document files (the 1x files are shared by hard links)."""
    from data_specs.hashing import uniform
    from data_specs.records import Document, read_documents, write_jsonl_gz
    from sources.stage import source_files

    root = run / "dedup-bench" / f"chars{max_chars}"
    base = root / "replicas"
    originals = None
    for k in range(max(scales)):
        paths = [base / f"replica-{k:02d}-{s}.jsonl.gz" for s in range(SHARDS)]
        if all(p.exists() for p in paths):
            continue
        if originals is None:
            originals = [Document(d.id, d.component, d.source, d.text[:max_chars], d.url, d.meta)
                         for p in source_files(run).values() for d in read_documents(p)]
        base.mkdir(parents=True, exist_ok=True)
        if k == 0:  # the real documents, and a perturbed copy of 20% of them
            docs = list(originals) + [
                Document(f"{d.id}~p", d.component, d.source,
                         _perturbed(d.text, RATES[int(uniform(d.id, 1, "bench-rate") * len(RATES))], d.id + "~p"),
                         d.url, d.meta)
                for d in originals if uniform(d.id, 0, "bench-copy") < 0.2]
        else:
            docs = [Document(f"{d.id}~{k:02d}", d.component, d.source,
                             _perturbed(d.text, RATES[int(uniform(d.id, k, "bench-rate") * len(RATES))],
                                        f"{d.id}~{k}"), d.url, d.meta) for d in originals]
        for shard, path in enumerate(paths):  # two files per replica: both systems read files in parallel
            write_jsonl_gz(path, [d for d in docs if int(uniform(d.id, 0, "bench-shard") * SHARDS) == shard])
    out = {}
    for n in scales:
        folder = root / f"{n}x"
        if not folder.exists():
            tmp = root / f".{n}x.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for k in range(n):
                for path in sorted(base.glob(f"replica-{k:02d}-*.jsonl.gz")):
                    os.link(path, tmp / path.name)
            tmp.rename(folder)
        out[n] = folder
    return out


def input_size(folder: Path) -> tuple[int, int, list[str]]:
    from data_specs.records import read_documents

    docs = size = 0
    ids = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        for d in read_documents(path):
            docs += 1
            size += len(d.text.encode("utf-8"))
            ids.append(d.id)
    return docs, size, ids


# ------------------------------------------------------------------------------------------------ modes
def mode_glamkit(inp: Path, out: Path, workers: int) -> dict:
    from data_specs.specs import DedupSpec
    from pipelines.dedup.job import dedup_files_job

    args = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"] if workers == 2 else []
    summary = dedup_files_job([str(p) for p in sorted(inp.glob("*.jsonl.gz"))], out, DedupSpec(decontaminate=False),
                              args)
    kept = []
    for path in sorted((out / "documents").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            kept += [json.loads(line)["id"] for line in f]
    return {"kept": kept, "pairs": summary["candidate_edges_verified"], "summary": summary}


def mode_datatrove(inp: Path, out: Path, python: str) -> dict:
    proc = subprocess.run([python, "-c", DATATROVE, str(inp), str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"datatrove failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "result.json").read_text())


def measure(cmd: list[str]) -> tuple[float, float, dict]:
    """Wall seconds and peak RSS (MB) of a command's whole process tree; the JSON it wrote."""
    seconds, _cpu, peak, result = measure_tree(cmd)
    return seconds, peak, result

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "bench-dedup")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--datatrove-scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-chars", type=int, default=50_000, help="cut each real document at this many characters")
    parser.add_argument("--datatrove-python", default=str(REPO / ".bench-venv" / "bin" / "python"))
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--mode", choices=["glamkit", "glamkit2", "datatrove"], help=argparse.SUPPRESS)
    parser.add_argument("--inp", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.mode:  # a measured child
        if args.mode == "datatrove":
            res = mode_datatrove(args.inp, args.out, args.datatrove_python)
        else:
            res = mode_glamkit(args.inp, args.out, 2 if args.mode == "glamkit2" else 1)
        Path(args.result).write_text(json.dumps(res))
        return 0

    if not args.skip_datatrove and not Path(args.datatrove_python).exists():
        raise SystemExit(f"{args.datatrove_python}: no datatrove virtualenv (`make bench` builds .bench-venv), "
                         "or pass --skip-datatrove")
    from filters.dedup import implied_threshold

    print(f"glamkit and datatrove: word 5-gram shingles, 16 bands x 8 rows, implied Jaccard threshold "
          f"{implied_threshold(16, 8):.3f}", file=sys.stderr)
    run = ensure_sources(args.run)
    inputs = build_inputs(run, sorted(set(args.scales) | set(args.datatrove_scales)), args.max_chars)
    sizes = {n: input_size(inputs[n]) for n in inputs}
    plan = [(n, "glamkit") for n in args.scales]
    plan += [(n, "glamkit2") for n in (1, 4) if n in inputs]
    if not args.skip_datatrove:
        plan += [(n, "datatrove") for n in args.datatrove_scales]
    results = {}
    with tempfile.TemporaryDirectory(dir=run) as tmp:
        for n, mode in plan:
            out = Path(tmp) / f"{mode}-{n}x"
            cmd = [sys.executable, __file__, "--mode", mode, "--inp", str(inputs[n]), "--out", str(out),
                   "--datatrove-python", args.datatrove_python]
            seconds, rss, res = measure(cmd)
            shutil.rmtree(out, ignore_errors=True)
            results[(n, mode)] = (seconds, rss, res)
            print(f"  {mode} {n}x: {seconds:.1f} s, {rss:.0f} MB", file=sys.stderr, flush=True)

    load = os.getloadavg()[0]
    print(f"\ndedup benchmark: real demo corpora (texts cut at {args.max_chars} characters) + perturbed copies; "
          f"{os.cpu_count()} cores, load average {load:.1f} at the end\n")
    print("| run | input | documents | MB | wall s | docs/s | peak RSS (MB) | removed | candidate pairs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    labels = {"glamkit": "glamkit, in-process runner", "glamkit2": "glamkit, 2 workers",
              "datatrove": "datatrove MinHash, 2 tasks / 2 workers"}
    for (n, mode), (seconds, rss, res) in results.items():
        docs, size, _ = sizes[n]
        print(f"| {labels[mode]} | {n}x | {docs} | {size / 1e6:.0f} | {seconds:.1f} | {docs / seconds:.0f} | "
              f"{rss:.0f} | {docs - len(res['kept'])} | {res['pairs']} |")
    print()
    g = {n: results[(n, "glamkit")] for n in args.scales}
    if 1 in g and 16 in g:
        print(f"glamkit peak RSS 16x / 1x: {g[16][1] / g[1][1]:.2f} (target <= 1.5)")
    for n in args.datatrove_scales:
        if (n, "datatrove") in results and n in g:
            gd, dd = g[n], results[(n, "datatrove")]
            docs = sizes[n][0]
            print(f"{n}x: glamkit / datatrove docs/s {dd[0] / gd[0]:.2f}x (target >= 3x); removed: glamkit "
                  f"{docs - len(gd[2]['kept'])}, datatrove {docs - len(dd[2]['kept'])}")
    ids1 = set(sizes[1][2]) if 1 in sizes else set()
    for mode in ("glamkit", "datatrove"):
        if (1, mode) in results and (4, mode) in results:
            k1 = set(results[(1, mode)][2]["kept"])
            k4 = set(results[(4, mode)][2]["kept"]) & ids1
            print(f"{mode}: survivors among the 1x documents, 1x vs 4x: {'same' if k1 == k4 else 'differ'} "
                  f"({len(k1 ^ k4)} documents differ)")
    for n in (1, 4):
        if (n, "glamkit") in results and (n, "glamkit2") in results:
            same = results[(n, "glamkit")][2]["kept"] == results[(n, "glamkit2")][2]["kept"]
            print(f"glamkit {n}x: 1 vs 2 workers: {'same survivors' if same else 'DIFFERENT survivors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
