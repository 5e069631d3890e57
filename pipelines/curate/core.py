"""The curate job's per-document work as plain Python, shared by the Beam job (`pipelines/curate/job.py`) and the
benchmark's plain loop: raw record in, curated record out. No Beam here.

Stages, in order; a document leaves at the first that rejects it, and that stage's rule is its `drop_reason`:
  1. decode / schema check  -> errored (dead letter) when the record cannot be processed; nothing else is errored
  1b. eval holdout          -> "eval_holdout": documents the mixture holds out for eval tasks
                               (filters.holdout.is_eval_holdout: uniform(id, seed, "eval-holdout") < fraction) never
                               reach a training mixture, whatever the later stages decide
  2. normalisation          (filters.normalize.normalize_document: never rejects)
  3. language               -> "language", "min_language_score"
  4. heuristic rules        -> filters.rules.TEXT_RULES ("min_words", ..., "min_stop_words")
  5. dedup                  -> DEDUP_REASONS: exact, then near duplicates, then contaminated (pipelines/dedup/,
                               between rules and scoring: pipelines/curate/job.py's build)
  6. quality score + keep   -> "quality" (components with quality_filter only; the score is kept on every document
                               that reaches this stage, dropped or not)
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.hashing import uniform
from data_specs.records import Document, json_value
from data_specs.specs import KeepRuleSpec, RulesSpec
from filters.calibrate import fit_alpha_to_keep_rate, fit_alpha_to_reference
from filters.holdout import is_eval_holdout  # the eval tasks' own rule: held out there, dropped here
from filters.keep import TopFractionCutoff, apply_keep_rule
from filters.normalize import normalize_document
from filters.rules import language_failure, rule_failure
from pipelines.curate.schema import (
    CURATED_SCHEMA,
    DEAD_LETTER_EXCERPT,
    DROPPED_SCHEMA,
    EVAL_HOLDOUT_REASON,
    QUALITY_REASON,
    ROW_GROUP,
    SAMPLE_TEXT_CHARS,
)


# ------------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class InputSplit:
    """One readable piece of a source file: a whole JSONL(.gz) file, or one Parquet row group."""

    source: str
    component: str
    path: str
    part: int = 0  # Parquet row group; 0 for JSONL


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as read, before any decoding: a JSONL line's bytes, or a Parquet row with binary string fields."""

    source: str
    component: str
    locator: str  # file:line or file:rowgroup:row, for the dead-letter file
    payload: bytes | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Curated:
    """A record on its way through the stages. Exactly one outcome at the end: errored, dropped or kept.

    Frozen: a stage that decides something returns a changed copy (`dataclasses.replace`). Beam forbids changing an
    element a DoFn received, and a runner may hand the same object to several consumers (the dedup stage's
    features, snippets and verdicts all read the same items): a mutation there fails loudly instead of leaking."""

    source: str
    component: str
    locator: str
    doc: Document | None = None
    text_bytes: int = 0  # UTF-8 bytes of the text as read (errored: of the raw record)
    quality_score: float | None = None
    drop_reason: str | None = None
    error: str | None = None  # errored: why the record could not be processed
    raw_excerpt: str | None = None  # errored: the start of the raw record, for the dead-letter file

    @property
    def alive(self) -> bool:
        return self.error is None and self.drop_reason is None

    @property
    def outcome(self) -> str:
        return "errored" if self.error is not None else "dropped" if self.drop_reason is not None else "kept"


# ------------------------------------------------------------------------------------------------ reading
def read_split(split: InputSplit, batch_size: int) -> Iterator[list[RawRecord]]:
    """Raw records of a split, in batches. Decoding happens later (in parallel, per record), so that one bad record
    never fails the read: a file that cannot be opened or decompressed at all does fail it, loudly."""
    batch: list[RawRecord] = []
    for record in _raw_records(split):
        batch.append(record)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _raw_records(split: InputSplit) -> Iterator[RawRecord]:
    """The split's records, undecoded. A file that cannot be read as a whole (cut short, not gzip, not Parquet) fails
    the job with one line naming it and where: its records cannot be told apart, so none would be counted."""
    name = split.path.rsplit("/", 1)[-1]
    if split.path.endswith(".parquet"):
        try:
            with fileio.open_read(split.path) as f:
                table = pq.ParquetFile(f, page_checksum_verification=True).read_row_group(split.part)
            table = table.cast(_binary_schema(table.schema))
            rows = table.to_pylist()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise GlamkitError(f"{split.path}: row group {split.part}: not a readable Parquet file of document "
                               f"records ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        for i, row in enumerate(rows):
            yield RawRecord(split.source, split.component, f"{name}:rg{split.part}:row{i}", row)
        return
    with fileio.open_read(split.path) as raw:
        stream = gzip.GzipFile(fileobj=raw) if split.path.endswith(".gz") else raw
        lineno = 0
        try:
            for lineno, line in enumerate(stream, 1):
                if line.strip():
                    yield RawRecord(split.source, split.component, f"{name}:{lineno}", line)
        except (EOFError, OSError, zlib.error) as exc:
            raise GlamkitError(f"{split.path}: byte {raw.tell()} (after line {lineno}): the file is damaged "
                               f"({exc or type(exc).__name__}); rerun its stage (glamkit sources read --force)"
                               ) from None


def _binary_schema(schema: pa.Schema) -> pa.Schema:
    """The same columns with every string type as binary (so invalid UTF-8 reaches the decoder, not pyarrow)."""

    def binary(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t):
            return pa.large_binary()
        if pa.types.is_string(t):
            return pa.binary()
        if pa.types.is_map(t):
            return pa.map_(binary(t.key_type), binary(t.item_type))
        return t

    return pa.schema([pa.field(f.name, binary(f.type), f.nullable) for f in schema])


def parquet_splits(source: str, component: str, path: str) -> list[InputSplit]:
    try:
        with fileio.open_read(path) as f:
            n = pq.ParquetFile(f).metadata.num_row_groups
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise GlamkitError(f"{path}: byte 0: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    return [InputSplit(source, component, path, i) for i in range(max(n, 1))]


# ------------------------------------------------------------------------------------------------ decoding
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")


def _repair_invalid_utf8(exc: UnicodeError) -> tuple[str, int]:
    """A codecs error handler: bytes that are not UTF-8 are read as Windows-1252 (the usual mixed-encoding culprit:
    Latin-1/cp1252 text pasted into UTF-8). A byte that is not cp1252 either cannot be repaired."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    if any(b in _CP1252_UNDEFINED for b in bad):
        raise exc
    return bytes(bad).decode("cp1252"), exc.end


codecs.register_error("glamkit-repair", _repair_invalid_utf8)


class RecordError(ValueError):
    """A record that cannot be processed; its message is the dead-letter reason."""


def _text(value: Any, name: str) -> Any:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8", "glamkit-repair")
        except UnicodeDecodeError as exc:
            raise RecordError(f"invalid_utf8: field {name!r} byte {exc.start} cannot be repaired") from None
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RecordError(f"invalid_unicode: field {name!r} holds an unpaired surrogate at {exc.start}") from None
    return value


def decode_record(raw: RawRecord) -> Document:
    """The decode / schema check: a Document (with `Document.from_dict` semantics) or RecordError."""
    if isinstance(raw.payload, bytes):
        line = _text(raw.payload, "line")
        try:
            row = json_value(line)
        except json.JSONDecodeError as exc:
            raise RecordError(f"bad_json: {exc.msg} at char {exc.pos}") from None
        if not isinstance(row, dict):
            raise RecordError(f"schema: a record must be a JSON object, got {type(row).__name__}")
    else:
        row = dict(raw.payload)
    row = {k: _text(v, k) for k, v in row.items()}
    meta = row.get("meta")
    try:
        if isinstance(meta, list):  # a Parquet map: (key, value) pairs
            row["meta"] = {_text(k, "meta"): _text(v, "meta") for k, v in meta}
        elif isinstance(meta, dict):
            row["meta"] = {_text(k, "meta"): _text(v, "meta") for k, v in meta.items()}
        doc = Document.from_dict(row)
    except RecordError:
        raise
    except (ValueError, TypeError) as exc:  # meta that is not string pairs, or what from_dict refuses
        raise RecordError(f"schema: {exc}") from None
    if doc.component != raw.component:
        raise RecordError(f"schema: component {doc.component!r}, but source {raw.source!r} feeds {raw.component!r}")
    return doc


def _excerpt(payload: bytes | dict[str, Any]) -> str:
    if isinstance(payload, bytes):
        return payload[:DEAD_LETTER_EXCERPT].decode("utf-8", "backslashreplace").rstrip("\n")
    return repr({k: v[:100] if isinstance(v, (bytes, str)) else v for k, v in payload.items()})[:DEAD_LETTER_EXCERPT]


def _payload_bytes(payload: bytes | dict[str, Any]) -> int:
    if isinstance(payload, bytes):
        return len(payload)
    text = payload.get("text")
    return len(text) if isinstance(text, (bytes, str)) else 0


# ------------------------------------------------------------------------------------------------ stages
def pre_dedup(raws: Sequence[RawRecord], rules: Mapping[str, RulesSpec],
              holdout: tuple[int, float] | None = None) -> list[Curated]:
    """Stages 1-4 over a batch: decode/schema check, eval holdout (`holdout` = (seed, fraction)), normalisation,
    language filter, heuristic rules."""
    seed, fraction = holdout or (0, 0.0)
    return [_pre_dedup_one(raw, rules, seed, fraction) for raw in raws]


def _pre_dedup_one(raw: RawRecord, rules: Mapping[str, RulesSpec], seed: int, fraction: float) -> Curated:
    where = (raw.source, raw.component, raw.locator)
    try:
        doc = decode_record(raw)
    except RecordError as exc:
        return Curated(*where, text_bytes=_payload_bytes(raw.payload), error=str(exc),
                       raw_excerpt=_excerpt(raw.payload))
    text_bytes = len(doc.text.encode("utf-8"))
    if is_eval_holdout(doc.id, seed, fraction):
        return Curated(*where, doc, text_bytes, drop_reason=EVAL_HOLDOUT_REASON)
    text = normalize_document(doc.text)
    spec = rules[raw.component]
    return Curated(*where, Document(doc.id, doc.component, doc.source, text, doc.url, doc.meta), text_bytes,
                   drop_reason=language_failure(doc.meta, spec) or rule_failure(text, spec))


def score_batch(items: Sequence[Curated], classifier: Any) -> list[Curated]:
    """Stage 6a: the items (all alive, all of quality-filtered components) with their quality scores."""
    if not items:
        return []
    scores = classifier.score([it.doc.text for it in items])
    return [replace(it, quality_score=float(s)) for it, s in zip(items, scores, strict=True)]


def apply_keep(items: Sequence[Curated], rule: KeepRuleSpec, cutoff: TopFractionCutoff | None = None
               ) -> list[Curated]:
    """Stage 6b: the keep rule over scored items: each rejected one comes back with drop_reason 'quality'."""
    if not items:
        return []
    ids = [it.doc.id for it in items]
    scores = np.array([it.quality_score for it in items], dtype=np.float32)
    keep = apply_keep_rule(rule, ids, scores, cutoff)
    return [it if k else replace(it, drop_reason=QUALITY_REASON) for it, k in zip(items, keep, strict=True)]


def fit_cutoff(ids_scores: Sequence[tuple[str, float]], rule: KeepRuleSpec) -> TopFractionCutoff:
    """top_fraction's component-wide cutoff, from every (id, score) of the component (order-independent)."""
    pairs = sorted(ids_scores)
    return TopFractionCutoff.fit([p[0] for p in pairs], np.array([p[1] for p in pairs], dtype=np.float32),
                                 rule.fraction, rule.seed)


@dataclass(frozen=True)
class FittedKeep:
    """A keep rule made concrete for one component: alpha resolved, or top_fraction's cutoff fitted."""

    rule: KeepRuleSpec
    cutoff: TopFractionCutoff | None = None
    calibration: dict[str, Any] | None = None  # filters.calibrate.Calibration.to_dict() when alpha was auto


def needs_fit(rule: KeepRuleSpec | None) -> bool:
    """Rules that need every score of a component before any document's fate is known."""
    return rule is not None and (rule.kind == "top_fraction" or rule.auto)


def fit_keep(ids_scores: Sequence[tuple[str, float]], rule: KeepRuleSpec,
             reference: Sequence[float] = ()) -> FittedKeep:
    """Fit a component-wide rule on every (id, score) of the component (order-independent): top_fraction's cutoff,
    or alpha 'auto' (filters/calibrate.py: to the reference scores, or to `rule.target_keep`)."""
    if rule.kind == "top_fraction":
        return FittedKeep(rule, fit_cutoff(ids_scores, rule))


    scores = np.array(sorted(s for _, s in ids_scores), dtype=np.float64)
    cal = (fit_alpha_to_keep_rate(scores, rule.target_keep) if rule.target_keep is not None
           else fit_alpha_to_reference(scores, np.asarray(reference, dtype=np.float64)))
    alpha = float(f"{cal.alpha:.6g}")  # what stats.json says is what was applied
    return FittedKeep(replace(rule, alpha=alpha, target_keep=None), None, {**cal.to_dict(), "alpha": alpha})


def keep_summary(rule: KeepRuleSpec, fitted: FittedKeep | None = None) -> dict[str, Any]:
    """stats.json's record of the rule a component was kept by: the rule as written and as applied."""
    applied = fitted.rule if fitted is not None else rule
    out: dict[str, Any] = {"rule": rule.describe(), "kind": rule.kind, "applied": applied.describe()}
    if rule.kind == "pareto":
        out["alpha"] = applied.alpha
        out["seed"] = rule.seed
    if fitted is not None and fitted.calibration is not None:
        out["calibration"] = fitted.calibration
    if fitted is not None and fitted.cutoff is not None:
        out["cutoff_score"] = fitted.cutoff.score
    return out


# ------------------------------------------------------------------------------------------------ sharding
def shard_of(doc_id: str, num_shards: int) -> int:
    return int(uniform(doc_id, 0, "curate-shard") * num_shards)


def sample_key(doc_id: str, seed: int) -> float:
    """Which dropped documents are sampled: the K with the smallest key per (component, reason)."""
    return uniform(doc_id, seed, "drop-sample")


# ------------------------------------------------------------------------------------------------ tables
def curated_table(items: Sequence[Curated]) -> pa.Table:
    rows = []
    for it in items:
        d = it.doc
        rows.append({"id": d.id, "component": d.component, "source": d.source, "text": d.text, "url": d.url,
                     "meta": sorted(d.meta.items()), "quality_score": it.quality_score, "drop_reason": it.drop_reason})
    return pa.Table.from_pylist(rows, schema=CURATED_SCHEMA)


def dropped_table(items: Sequence[Curated]) -> pa.Table:
    rows = [{"id": it.doc.id, "component": it.component, "source": it.source, "drop_reason": it.drop_reason,
             "quality_score": it.quality_score, "text_bytes": it.text_bytes} for it in items]
    return pa.Table.from_pylist(rows, schema=DROPPED_SCHEMA)


def sample_record(it: Curated) -> dict[str, Any]:
    d = it.doc
    text = d.text if len(d.text) <= SAMPLE_TEXT_CHARS else d.text[:SAMPLE_TEXT_CHARS]
    return {"id": d.id, "component": d.component, "source": d.source, "drop_reason": it.drop_reason,
            "quality_score": it.quality_score, "text_truncated": len(d.text) > SAMPLE_TEXT_CHARS, "text": text,
            "url": d.url, "meta": dict(sorted(d.meta.items()))}


def dead_letter_record(it: Curated) -> dict[str, Any]:
    return {"source": it.source, "component": it.component, "locator": it.locator, "reason": it.error,
            "excerpt": it.raw_excerpt}


def sort_key(it: Curated) -> tuple[str, str]:
    return (it.doc.id, it.source) if it.doc is not None else ("", it.locator)


# ------------------------------------------------------------------------------------------------ writing
def write_table_atomic(path: str, table: pa.Table, provenance: Mapping[str, Any] | None = None) -> None:
    """Write a Parquet file under a temporary name, then rename (local paths or any Beam filesystem)."""
    if provenance:
        meta = {b"glamkit.provenance": json.dumps(provenance, sort_keys=True).encode()}
        table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP)
    fileio.write_bytes(path, sink.getvalue().to_pybytes())
