"""The curated stage's layout and vocabulary: drop reasons (their order is the report's and the dedup verdict
codes'), the Parquet schemas of kept and dropped documents, file names, and reading kept documents back. No Beam: the
tokenizer, the mix job and the report read curated output through this module."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_specs.errors import GlamkitError
from data_specs.records import DOCUMENT_SCHEMA
from filters.rules import LANGUAGE_RULES, TEXT_RULES

EVAL_HOLDOUT_REASON = "eval_holdout"
EXACT_DUPLICATE, NEAR_DUPLICATE, CONTAMINATED = "exact_duplicate", "near_duplicate", "contaminated"
# Dedup's reasons; a dedup verdict's reason code is its place here, and a document's lowest one wins.
DEDUP_REASONS: tuple[str, ...] = (EXACT_DUPLICATE, NEAR_DUPLICATE, CONTAMINATED)
QUALITY_REASON = "quality"
DROP_REASONS: tuple[str, ...] = (EVAL_HOLDOUT_REASON, *LANGUAGE_RULES, *TEXT_RULES, *DEDUP_REASONS, QUALITY_REASON)
SAMPLE_TEXT_CHARS = 4000  # dropped-document samples keep this much text (bounded output)
DEAD_LETTER_EXCERPT = 300  # bytes of an errored record kept in the dead-letter file

# The curated record: the document record plus the curation outcome.
CURATED_SCHEMA = pa.schema(
    [
        *DOCUMENT_SCHEMA,
        pa.field("quality_score", pa.float32(), nullable=True),  # null where the component is not quality-filtered
        pa.field("drop_reason", pa.string(), nullable=True),  # null for kept documents
    ]
)
# Every dropped document, without its text: what was dropped, where from, and why.
DROPPED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("component", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("drop_reason", pa.string(), nullable=False),
        pa.field("quality_score", pa.float32(), nullable=True),
        pa.field("text_bytes", pa.int64(), nullable=False),
    ]
)
ROW_GROUP = 512
STATS_FILE = "stats.json"
SAMPLES_FILE = "samples/dropped.jsonl.gz"
DEAD_LETTER_FILE = "dead_letter.jsonl.gz"


def shard_name(num_shards: int, shard: int) -> str:
    return f"part-{shard:05d}-of-{num_shards:05d}.parquet"


def curated_files(curated_dir: str | Path) -> dict[str, list[Path]]:
    """component -> its kept-document Parquet parts (RUN/curated/documents/<component>/part-*.parquet), sorted."""
    root = Path(curated_dir) / "documents"
    if not root.is_dir():
        raise GlamkitError(f"{curated_dir}: no documents/ folder: run the curate stage first (`glamkit curate`)")
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        parts = sorted(folder.glob("part-*.parquet"))
        if parts:
            out[folder.name] = parts
    return out


def iter_curated(path: str | Path, columns: Sequence[str] = ("id", "component", "text"),
                 batch_size: int = 256) -> Iterator[list[dict]]:
    """Batches of kept documents (dicts with `columns`) from one curated Parquet part; dropped rows are skipped."""
    with pq.ParquetFile(path) as f:
        names = set(f.schema_arrow.names)
        cols = [c for c in columns if c in names] + (["drop_reason"] if "drop_reason" in names else [])
        for batch in f.iter_batches(batch_size=batch_size, columns=cols):
            rows = [r for r in batch.to_pylist() if r.get("drop_reason") is None]
            if rows:
                yield rows
