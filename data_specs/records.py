"""The document record: what every reader yields and every pipeline stage passes on.

On disk a record set is JSONL.gz (one JSON object per line; easy to inspect and to hand-write) or Parquet (columnar,
fast, carries provenance in its schema metadata). Both writers are deterministic: same records, same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_specs import io as fileio
from data_specs.errors import GlamkitError

COMPONENTS: tuple[str, ...] = ("web", "wikipedia", "books", "news", "forums", "conversations")



def component_order(name: str) -> tuple[int, str]:
    """Sort key: the components in COMPONENTS order, any other name after them by name."""
    return (COMPONENTS.index(name) if name in COMPONENTS else len(COMPONENTS), name)


DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("component", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("url", pa.string(), nullable=True),
        pa.field("meta", pa.map_(pa.string(), pa.string()), nullable=False),
    ]
)
_FIELDS = tuple(DOCUMENT_SCHEMA.names)


@dataclass(frozen=True)
class Document:
    """One document. `id` is stable and unique: see `make_doc_id`. `meta` holds strings only (language, title, work,
    group, ...), so every format can carry it without a schema change."""

    id: str
    component: str
    source: str
    text: str
    url: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.component not in COMPONENTS:
            raise ValueError(f"document {self.id!r}: unknown component {self.component!r} (one of {COMPONENTS})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "component": self.component,
            "source": self.source,
            "text": self.text,
            "url": self.url,
            "meta": dict(sorted(self.meta.items())),
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Document:
        """Build a record from a dict, checking fields and types (the curate job's schema check calls this)."""
        unknown = set(row) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        for name in ("id", "component", "source", "text"):
            if not isinstance(row.get(name), str):
                raise ValueError(f"field {name!r} must be a string, got {type(row.get(name)).__name__}")
        url = row.get("url")
        if url is not None and not isinstance(url, str):
            raise ValueError(f"field 'url' must be a string or null, got {type(url).__name__}")
        meta = row.get("meta") or {}
        if isinstance(meta, list):  # pyarrow returns map columns as lists of (key, value) pairs
            meta = dict(meta)
        if not isinstance(meta, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise ValueError("field 'meta' must map strings to strings")
        return cls(row["id"], row["component"], row["source"], row["text"], url, dict(meta))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(value: str) -> tuple[str, bool]:
    """(`value` with every lone surrogate as U+FFFD, whether it held one). A surrogate is half of a UTF-16 pair: an
    emoji cut in half in scraped JSON (`"\\ud83d"`) or a strange codec's output; no UTF-8 writer can encode one.
    Two halves that form a pair are joined into their character."""
    if value.isascii() or not _LONE_SURROGATE.search(value):
        return value, False
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace"), True


def doc_without_surrogates(doc: Document) -> tuple[Document, bool]:
    """(`doc` with no lone surrogate in any field, whether one was repaired): what every writer accepts."""
    strings = [doc.id, doc.source, doc.text, doc.url or "", *doc.meta, *doc.meta.values()]
    if not any(without_surrogates(s)[1] for s in strings):
        return doc, False

    def fix(s: str) -> str:
        return without_surrogates(s)[0]

    meta = {fix(k): fix(v) for k, v in doc.meta.items()}
    return Document(fix(doc.id), doc.component, fix(doc.source), fix(doc.text), doc.url and fix(doc.url), meta), True


def json_value(text: str | bytes) -> Any:
    """`json.loads`, with JSON nested deeper than Python's parser can go raised as a JSONDecodeError (which every
    reader counts) rather than a RecursionError (which escapes as an internal error)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def make_doc_id(source: str, locator: str) -> str:
    """A stable id from the source name and the document's position or URL: readable prefix, hashed locator."""
    digest = hashlib.blake2b(locator.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()
    return f"{source}/{digest}"


# ---------------------------------------------------------------------------------------------------- writing
def write_jsonl_gz(path: str | Path, docs: Iterable[Document]) -> int:
    """Write records as gzip'd JSONL (no timestamp or name in the gzip header, so output is byte-stable).
    Returns the number written. The file appears only when complete (data_specs.io.atomic_output).

    Written through a text buffer (8 KiB writes into the compressor), not line by line as data_specs.io's writer:
    deflate's output depends on where its input is cut, and these are the bytes every run folder already holds."""
    n = 0
    with fileio.atomic_output(path) as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
        for doc in docs:
            text.write(json.dumps(doc.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
        text.flush()
        text.detach()
    return n


def docs_to_table(docs: Iterable[Document]) -> pa.Table:
    rows = [d.to_dict() for d in docs]
    for row in rows:
        row["meta"] = list(row["meta"].items())
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)


def write_parquet(
    path: str | Path, docs: Iterable[Document], provenance: Mapping[str, Any] | None = None, batch: int = 1024
) -> int:
    """Write records as Parquet, `provenance` (spec hash, upstream hashes) in the schema metadata, each page with
    its CRC (zstd stores text it cannot shrink as is: without the CRC a flipped byte would change a text unseen)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = DOCUMENT_SCHEMA
    if provenance:
        schema = schema.with_metadata({b"glamkit.provenance": json.dumps(provenance, sort_keys=True).encode()})
    n = 0
    with fileio.atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd", write_page_checksum=True) as writer:
            chunk: list[Document] = []
            for doc in docs:
                chunk.append(doc)
                if len(chunk) == batch:
                    writer.write_table(docs_to_table(chunk).replace_schema_metadata(schema.metadata))
                    n += len(chunk)
                    chunk = []
            if chunk or n == 0:
                writer.write_table(docs_to_table(chunk).replace_schema_metadata(schema.metadata))
                n += len(chunk)
    return n


# ---------------------------------------------------------------------------------------------------- reading
def read_jsonl_gz(path: str | Path) -> Iterator[Document]:
    """Stream records from JSONL (gzip'd or plain, by suffix). A bad line raises GlamkitError naming file and line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Document.from_dict(json_value(line))
            except (ValueError, TypeError) as exc:
                raise GlamkitError(f"{path}:{lineno}: bad document record: {exc}") from exc


def read_parquet(path: str | Path, batch_size: int = 1024) -> Iterator[Document]:
    """Stream records from a Parquet file batch by batch (constant memory in the number of rows)."""
    with pq.ParquetFile(path, page_checksum_verification=True) as f:
        for batch in f.iter_batches(batch_size=batch_size, columns=list(_FIELDS)):
            for row in batch.to_pylist():
                yield Document.from_dict(row)


def read_documents(path: str | Path) -> Iterator[Document]:
    """Stream records from a .jsonl, .jsonl.gz or .parquet file."""
    name = str(path)
    if name.endswith(".parquet"):
        return read_parquet(path)
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz")):
        return read_jsonl_gz(path)
    raise GlamkitError(f"{path}: unknown document file type (expected .jsonl, .jsonl.gz or .parquet)")


def parquet_provenance(path: str | Path) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"glamkit.provenance")
    return json.loads(raw) if raw else {}
