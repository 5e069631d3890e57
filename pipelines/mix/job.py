"""The mixing job (Beam): curated documents in, GLaM-weighted token shards out. Thin glue over `rates` (rates,
copies) and `rows` (rows, shuffle, Arrow); the stage is pipelines/mix/stage.py.

    RUN/curated/documents/<component>/part-*.parquet          kept documents (the curate job's layout)
      -> one element per Parquet row group, reshuffled across workers -> read (batches of documents)
      -> tokenize: SentencePiece batch encode, EOS appended                              (split, component, id, tokens)
      -> split: validation iff uniform(doc_id, seed, "split") < validation_fraction, before any sampling
      -> rates: per component, the training split's (doc_id, tokens) -> ComponentRate        (one side input)
      -> copies: floor(rate) + [uniform(doc_id, seed, "mix") < threshold] per document; validation: once each
      -> each copy keyed by uniform(doc_id#copy, seed, "shuffle"), bucketed by that key; per bucket, sorted and packed
      -> every row placed by a keyed permutation of [0, rows in split): shard = place // sequences_per_shard
      -> shards written (rows sorted by place, temporary name + rename), then manifest.json and mix_stats.json

Outputs in OUT (the stage runner's temporary folder, renamed to RUN/shards/):
    train-SSSSS-of-NNNNN.arrow, validation-SSSSS-of-NNNNN.arrow   Arrow IPC files in data_specs.shards.SHARD_SCHEMA
    manifest.json                                                  data_specs.shards.ShardManifest
    mix_stats.json                                                 per component counts and length histograms
Every shard holds `sequences_per_shard` rows except each split's last. Nothing depends on the runner, its
parallelism or the clock: timings go to the stage log.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq

from data_specs import io as fileio
from data_specs import progress
from data_specs.errors import GlamkitError
from data_specs.hashing import hash_file, hash_value, uniform
from data_specs.loader import to_plain
from data_specs.records import component_order
from data_specs.shards import ComponentMix, ShardInfo, ShardManifest
from data_specs.specs import MixtureSpec
from data_specs.tokenizer import load_tokenizer
from pipelines.beam import checks as job_checks
from pipelines.beam.checks import LISTED, fail_if, ipc_rows
from pipelines.beam.options import pipeline_options
from pipelines.curate.schema import curated_files
from pipelines.mix import rows as packing
from pipelines.mix.rates import MIX_PURPOSE, TRAIN, VALIDATION, copies, mixture_rates, rate_warnings, split_of

log = logging.getLogger("glamkit.mix")
PROGRESS_COUNTER = "mix"  # documents tokenized (data_specs.progress), shown by the stage while the job runs

MANIFEST = "manifest.json"
STATS_FILE = "mix_stats.json"
READ_BATCH = 512  # documents per tokenize call (a curated row group holds at most 512): few, large encode calls
LENGTH_BINS = 25  # document-length histogram: log2 bins [2^k, 2^(k+1)) tokens, k < 25
SPLITS = (TRAIN, VALIDATION)


@dataclass(frozen=True)
class MixJob:
    """Everything the pipeline needs, resolved up front (picklable: it travels to the workers)."""

    parts: tuple[tuple[str, str, int], ...]  # (component, parquet path, row group)
    weights: dict[str, float]
    budget: int
    seed: int
    seq_len: int
    sequences_per_shard: int
    validation_fraction: float
    exact_tokens: bool
    model: bytes
    tokenizer_sha256: str
    eos_id: int
    pad_id: int
    vocab_size: int
    out_dir: str
    spec_hash: str
    upstream: dict[str, str] = field(default_factory=dict)


def make_job(spec: MixtureSpec, curated_dir: Path, tokenizer_dir: Path, out_dir: Path | str,
             upstream: dict[str, str] | None = None) -> MixJob:

    tok = load_tokenizer(tokenizer_dir)
    parts = []
    for component, files in curated_files(curated_dir).items():
        if component not in spec.components:
            continue
        for path in files:
            with pq.ParquetFile(path) as f:
                parts.extend((component, str(path), g) for g in range(f.num_row_groups))
    if not parts:
        raise GlamkitError(f"{curated_dir}: no curated documents for the mixture's components")
    m = spec.mixing
    return MixJob(
        parts=tuple(parts),
        weights={c: s.weight for c, s in spec.components.items()},
        budget=int(m.budget_tokens),
        seed=spec.seed,
        seq_len=m.seq_len,
        sequences_per_shard=m.sequences_per_shard,
        validation_fraction=m.validation_fraction,
        exact_tokens=m.exact_tokens,
        model=tok.model,
        tokenizer_sha256=tok.sha256,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        vocab_size=tok.vocab_size,
        out_dir=str(out_dir),
        spec_hash=hash_value(to_plain(spec)),
        upstream=dict(upstream or {}),
    )


# ------------------------------------------------------------------------------------------------ pure steps
def read_part(part: tuple[str, str, int], batch: int = READ_BATCH) -> Iterable[list[tuple[str, str, str]]]:
    """Batches of (component, doc_id, text) of one Parquet row group's kept documents."""
    component, path, group = part
    with pq.ParquetFile(path) as f:
        cols = [c for c in ("id", "text", "drop_reason") if c in f.schema_arrow.names]
        table = f.read_row_group(group, columns=cols)
    ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
    reasons = table.column("drop_reason").to_pylist() if "drop_reason" in cols else [None] * len(ids)
    docs = [(component, i, t) for i, t, r in zip(ids, texts, reasons, strict=True) if r is None]
    for start in range(0, len(docs), batch):
        yield docs[start:start + batch]


def length_bin(n: int) -> int:
    return min(max(n, 1).bit_length() - 1, LENGTH_BINS - 1)


def make_plan(sizes: Sequence[tuple[str, str, str, int]], job: MixJob) -> dict[str, Any]:
    """From every document's (split, component, doc_id, tokens): rates, validation counts, histograms, buckets."""
    train: dict[str, list[tuple[str, int]]] = {c: [] for c in job.weights}
    val: dict[str, list[int]] = {c: [0, 0] for c in job.weights}
    hist: dict[str, list[int]] = {c: [0] * LENGTH_BINS for c in job.weights}
    for split, component, doc_id, n in sorted(sizes):
        if component not in job.weights:
            continue
        hist[component][length_bin(n)] += 1
        if split == TRAIN:
            train[component].append((doc_id, n))
        else:
            val[component][0] += 1
            val[component][1] += n
    rates = mixture_rates(train, job.weights, job.budget, job.seed, job.exact_tokens)
    sampled_docs = {c: sum(1 for d, _ in docs if copies(uniform(d, job.seed, MIX_PURPOSE), rates[c].whole,
                                                          rates[c].threshold) > 0) for c, docs in train.items()}
    per_bucket = job.seq_len * job.sequences_per_shard
    tokens = {TRAIN: sum(r.planned_tokens for r in rates.values()), VALIDATION: sum(v[1] for v in val.values())}
    return {
        "rates": {c: asdict(r) for c, r in rates.items()},
        "validation": {c: {"documents": v[0], "tokens": v[1]} for c, v in val.items()},
        "documents_sampled": sampled_docs,
        "length_histogram": hist,
        "buckets": {s: max(1, math.ceil(t / per_bucket)) for s, t in tokens.items()},
        "warnings": rate_warnings(rates),
        "tokens": tokens,
    }


def expand(doc: tuple, plan: dict[str, Any], seed: int) -> Iterable[tuple[tuple[str, int], packing.Unit]]:
    """One document -> its copies as ((split, bucket), Unit)."""
    split, component, doc_id, tokens = doc
    if component not in plan["rates"]:
        return
    if split == TRAIN:
        rate = plan["rates"][component]
        n = copies(uniform(doc_id, seed, MIX_PURPOSE), rate["whole"], rate["threshold"])
    else:
        n = 1
    buckets = plan["buckets"][split]
    for k in range(n):
        key = uniform(f"{doc_id}\x1f{k}", seed, f"shuffle-{split}")
        yield (split, min(int(key * buckets), buckets - 1)), packing.Unit(key, doc_id, k, component, tokens)


def offsets(counts: Sequence[tuple[tuple[str, int], int]]) -> dict[str, Any]:
    """Rows per (split, bucket) -> per split: total rows and each bucket's first global row index."""
    out: dict[str, Any] = {}
    for (split, bucket), n in sorted(counts):
        s = out.setdefault(split, {"rows": 0, "offset": {}})
        s["offset"][bucket] = s["rows"]
        s["rows"] += n
    return out


def shard_name(split: str, shard: int, n_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{n_shards:05d}.arrow"


def n_shards(rows: int, per_shard: int) -> int:
    return max(1, math.ceil(rows / per_shard)) if rows else 0


def expected_shards(split_rows: dict[str, int], per_shard: int) -> dict[str, int]:
    """Shard file -> its rows: each split's rows in files of `per_shard`, the last one holding the rest."""
    out = {}
    for split, rows in split_rows.items():
        n = n_shards(rows, per_shard)
        for i in range(n):
            out[shard_name(split, i, n)] = per_shard if i < n - 1 else rows - per_shard * (n - 1)
    return out


# ------------------------------------------------------------------------------------------------ DoFns
class _Tokenize(beam.DoFn):
    def __init__(self, job: MixJob) -> None:
        self.model, self.eos, self.seed, self.vf = job.model, job.eos_id, job.seed, job.validation_fraction
        self.sp: Any = None

    def setup(self) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_proto=self.model)

    def process(self, batch: list[tuple[str, str, str]]) -> Iterable[tuple]:
        encoded = self.sp.encode([t for _, _, t in batch])
        progress.count(PROGRESS_COUNTER, len(batch))
        for (component, doc_id, _), ids in zip(batch, encoded, strict=True):
            tokens = np.empty(len(ids) + 1, np.int32)
            tokens[:-1] = ids
            tokens[-1] = self.eos
            tokens.flags.writeable = False  # read by Sizes and Copies alike: a change would fail, not leak
            yield split_of(doc_id, self.seed, self.vf), component, doc_id, tokens


class _Pack(beam.DoFn):
    def __init__(self, job: MixJob) -> None:
        self.seq_len, self.pad = job.seq_len, job.pad_id

    def process(self, element: tuple) -> Iterable[Any]:
        (split, bucket), units = element
        ordered = sorted(units, key=lambda u: (u.key, u.doc_id, u.copy))
        rows = packing.pack(ordered, self.seq_len, self.pad)
        yield beam.pvalue.TaggedOutput("counts", ((split, bucket), len(rows)))
        for r in range(len(rows)):
            yield (split, bucket, r), rows.row(r)


class _Place(beam.DoFn):
    def __init__(self, job: MixJob) -> None:
        self.seed, self.per_shard = job.seed, job.sequences_per_shard

    def process(self, element: tuple, layout: dict[str, Any]) -> Iterable[Any]:
        (split, bucket, r), row = element
        total = layout[split]["rows"]
        g = layout[split]["offset"][bucket] + r
        place = packing.permute_index(g, total, packing.shuffle_key(self.seed, split))
        yield (split, place // self.per_shard), (place % self.per_shard, row)


class _WriteShard(beam.DoFn):
    def __init__(self, job: MixJob) -> None:
        self.out_dir, self.per_shard = job.out_dir, job.sequences_per_shard

    def process(self, element: tuple, layout: dict[str, Any]) -> Iterable[dict[str, Any]]:
        (split, shard), items = element
        rows = [row for _, row in sorted(items, key=lambda it: it[0])]
        name = shard_name(split, shard, n_shards(layout[split]["rows"], self.per_shard))
        table = packing.rows_table(rows)
        with fileio.atomic_path(Path(self.out_dir) / name) as tmp:
            packing.write_ipc(str(tmp), table)
            digest = hash_file(tmp)
        by_component: dict[str, int] = {}
        for _, segment_ids, _, _, comps in rows:
            counts = np.bincount(segment_ids, minlength=len(comps) + 1)
            for k, component in enumerate(comps, 1):
                by_component[component] = by_component.get(component, 0) + int(counts[k])
        yield {"file": name, "split": split, "rows": len(rows),
               "tokens": int(sum(int(np.count_nonzero(r[1])) for r in rows)), "sha256": digest,
               "components": by_component}


def write_outputs(shards: list[dict[str, Any]], plan: dict[str, Any], job: MixJob) -> dict[str, Any]:
    """manifest.json and mix_stats.json from the written shards and the plan; checks shards against the plan."""
    shards = sorted(shards, key=lambda s: (SPLITS.index(s["split"]), s["file"]))
    realised: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for s in shards:
        for c, n in s["components"].items():
            realised[s["split"]][c] = realised[s["split"]].get(c, 0) + n
    components = {}
    for c in sorted(job.weights, key=component_order):
        r = plan["rates"][c]
        got = realised[TRAIN].get(c, 0)
        if got != r["planned_tokens"]:
            raise GlamkitError(f"mix: component {c}: {got} tokens in the training shards, planned "
                               f"{r['planned_tokens']} (packing lost or duplicated tokens)")
        val = plan["validation"][c]
        if realised[VALIDATION].get(c, 0) != val["tokens"]:
            raise GlamkitError(f"mix: component {c}: validation shards hold {realised[VALIDATION].get(c, 0)} "
                               f"tokens, expected {val['tokens']}")
        components[c] = ComponentMix(
            target_weight=job.weights[c], tokens_available=r["tokens_available"], tokens=got,
            epochs=round(got / r["tokens_available"], 6) if r["tokens_available"] else 0.0,
            documents=plan["documents_sampled"][c])
    total_train = sum(m.tokens for m in components.values())
    manifest = ShardManifest(
        seq_len=job.seq_len,
        seed=job.seed,
        spec_hash=job.spec_hash,
        tokenizer_hash=job.tokenizer_sha256,
        upstream=dict(sorted(job.upstream.items())),
        shards=tuple(ShardInfo(s["file"], s["split"], s["rows"], s["tokens"], s["sha256"]) for s in shards),
        components=components,
        extra={
            "budget_tokens": job.budget,
            "sequences_per_shard": job.sequences_per_shard,
            "vocab_size": job.vocab_size,
            "eos_id": job.eos_id,
            "pad_id": job.pad_id,
            "validation_fraction": job.validation_fraction,
            "exact_tokens": job.exact_tokens,
            "realised_weight": {c: round(m.tokens / total_train, 6) if total_train else 0.0
                                for c, m in components.items()},
            "rates": {c: {k: plan["rates"][c][k] for k in ("rate", "whole", "threshold", "target_tokens",
                                                          "documents_available")} for c in components},
            "validation": plan["validation"],
            "split_tokens": {s: sum(x["tokens"] for x in shards if x["split"] == s) for s in SPLITS},
            "split_rows": {s: sum(x["rows"] for x in shards if x["split"] == s) for s in SPLITS},
            "warnings": plan["warnings"],
        },
    )
    stats = {
        "components": {c: {**plan["rates"][c], "documents_sampled": plan["documents_sampled"][c],
                           "tokens_sampled": components[c].tokens, "validation": plan["validation"][c],
                           "length_histogram": plan["length_histogram"][c]} for c in components},
        "length_bins": [1 << k for k in range(LENGTH_BINS)],
        "splits": {s: {"rows": manifest.extra["split_rows"][s], "tokens": manifest.extra["split_tokens"][s],
                       "padding": manifest.extra["split_rows"][s] * job.seq_len - manifest.extra["split_tokens"][s]}
                   for s in SPLITS},
    }
    out = Path(job.out_dir)
    fileio.write_json(out / STATS_FILE, stats, sort_keys=True, indent=2)
    fileio.write_text(out / MANIFEST, manifest.to_json())
    return manifest.extra["split_tokens"]


# ------------------------------------------------------------------------------------------------ pipeline
def build(pipeline: Any, job: MixJob) -> None:
    """Add the mixing job's transforms to a Beam pipeline."""
    docs = (
        pipeline
        | "Parts" >> beam.Create(list(job.parts))
        | "Spread" >> beam.Reshuffle()  # row groups, not texts: spreads the work without shuffling the corpus
        | "Read" >> beam.FlatMap(read_part)
        | "Tokenize" >> beam.ParDo(_Tokenize(job))
    )
    plan = beam.pvalue.AsSingleton(
        docs
        | "Sizes" >> beam.Map(lambda d: (d[0], d[1], d[2], len(d[3])))
        | "AllSizes" >> beam.combiners.ToList()
        | "Plan" >> beam.Map(make_plan, job)
    )
    packed = (
        docs
        | "Copies" >> beam.FlatMap(expand, plan, job.seed)
        | "ByBucket" >> beam.GroupByKey()
        | "Pack" >> beam.ParDo(_Pack(job)).with_outputs("counts", main="rows")
    )
    layout = beam.pvalue.AsSingleton(packed.counts | "AllCounts" >> beam.combiners.ToList()
                                      | "Offsets" >> beam.Map(offsets))
    (
        packed.rows
        | "Place" >> beam.ParDo(_Place(job), layout)
        | "ByShard" >> beam.GroupByKey()
        | "Write" >> beam.ParDo(_WriteShard(job), layout)
        | "AllShards" >> beam.combiners.ToList()
        | "Manifest" >> beam.Map(write_outputs, plan, job)
    )


def run_job(job: MixJob, beam_args: Sequence[str] = ()) -> dict[str, Any]:
    """Run the pipeline to completion; return the manifest's content, once the shard files are checked against it
    (pipelines.beam.checks): otherwise the job fails and its stage publishes nothing."""
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    pipeline = beam.Pipeline(options=pipeline_options(beam_args))
    build(pipeline, job)
    job_checks.run_to_completion(pipeline, "mix")
    out = Path(job.out_dir)  # the runner may report success having skipped a branch: check what was written
    job_checks.fail_if("mix", [n for n in (MANIFEST, STATS_FILE) if not (out / n).is_file()], [])
    manifest = json.loads((out / MANIFEST).read_text())
    check_shards(job.out_dir, {s["file"]: s["rows"] for s in manifest["shards"]},
                            expected_shards(manifest["extra"]["split_rows"], job.sequences_per_shard))
    return manifest


def mix(spec: MixtureSpec, curated_dir: Path, tokenizer_dir: Path, out_dir: Path, beam_args: Sequence[str] = (),
        upstream: dict[str, str] | None = None) -> dict[str, Any]:
    return run_job(make_job(spec, curated_dir, tokenizer_dir, out_dir, upstream), beam_args)


def check_shards(out_dir: str, listed: Mapping[str, int], expected: Mapping[str, int]) -> None:
    """RUN/shards: `listed` (the manifest's shard files -> rows) is exactly `expected` (file -> the rows the split's
    layout gives it), and each file exists and holds that many rows (sequences); no other shard file is there."""
    missing: list[str] = []
    wrong: list[str] = []
    if dict(listed) != dict(expected):
        odd = sorted(set(listed.items()) ^ set(expected.items()))
        wrong.append(f"the manifest lists {len(listed)} shards, the layout gives {len(expected)} "
                     f"(differing: {', '.join(f'{f} ({n} rows)' for f, n in odd[:LISTED])})")
    for name, rows in sorted(expected.items()):
        path = f"{out_dir}/{name}"
        if not fileio.exists(path):
            missing.append(name)
        elif (got := ipc_rows(path)) != rows:
            wrong.append(f"{name} holds {got} sequences, expected {rows}")
    stray = sorted(p.name for p in Path(out_dir).glob("*.arrow") if p.name not in expected)
    if stray:
        wrong.append(f"shard files no split accounts for: {', '.join(stray[:LISTED])}")
    fail_if("mix", missing, wrong)
