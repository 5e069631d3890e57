"""JSONL (plain or gzip) and Parquet: glamkit document records as they are, or any objects with a `text` field.

A full record (id, component, source, text, ...) passes through unchanged, so a previous run's output or another
tool's export can feed a source. A bare `{"text": ..., "url": ...}` object (C4, RedPajama, Dolma style) is stamped
with this source's name and component, an id from its `id` field or its line, and its other string fields as meta.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_specs import io as fileio
from data_specs.records import DOCUMENT_SCHEMA, Document, json_value
from sources.readers.base import (
    MiB,
    ReadContext,
    check_size,
    numbered_lines,
)
from sources.readers.tabular import domain

_RECORD_KEYS = {"id", "component", "source", "text"}


def read_records(path: str, ctx: ReadContext) -> Iterator[Document]:
    """Documents from .jsonl / .jsonl.gz / .json.gz / .parquet. Options: `text_field` (default text),
    `url_field` (default url), `id_field` (default id), `max_doc_bytes` (a longer line is counted `too_large`;
    default 256 MiB)."""
    if not check_size(path, ctx, 1 << 62):
        return
    if path.endswith(".parquet"):
        yield from _parquet_records(path, ctx)
        return
    text_field, url_field = ctx.opt("text_field", "text"), ctx.opt("url_field", "url")
    id_field = ctx.opt("id_field", "id")
    limit = int(ctx.opt("max_doc_bytes", 256 * MiB))
    name = ctx.relative(path)
    for lineno, line in numbered_lines(path, ctx, limit):
        if not line.strip():
            continue
        try:
            row = json_value(ctx.decode(line, f"{path}:{lineno}"))
        except json.JSONDecodeError as exc:
            ctx.error("bad_json", f"{path}:{lineno}", exc.msg)
            continue
        doc = _document(row, ctx, name, lineno, text_field, url_field, id_field, path)
        if doc is not None:
            yield doc


def _parquet_records(path: str, ctx: ReadContext) -> Iterator[Document]:
    """Document records from Parquet, row group by row group; a row that is not a document record, or a row group
    that cannot be read (a damaged file), is counted."""
    columns = list(DOCUMENT_SCHEMA.names)
    with fileio.open_read(path) as raw:
        try:
            f = pq.ParquetFile(raw, page_checksum_verification=True)  # pages written with a CRC
            groups = f.metadata.num_row_groups
        except (pa.ArrowException, OSError, ValueError) as exc:
            ctx.error("bad_parquet", path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        for group in range(groups):
            try:
                rows = f.read_row_group(group, columns=[c for c in columns if c in f.schema_arrow.names]).to_pylist()
            except (pa.ArrowException, OSError, ValueError) as exc:  # UnicodeDecodeError: invalid UTF-8 in a string
                ctx.error("bad_parquet", f"{path} row group {group}", str(exc).splitlines()[0] if str(exc) else "")
                continue
            for i, row in enumerate(rows):
                where = f"{path} row group {group} row {i}"
                try:
                    doc = Document.from_dict(row)
                except (ValueError, TypeError) as exc:
                    ctx.error("bad_record", where, str(exc))
                    continue
                yield ctx.checked(doc, where)


def _document(
    row: Any, ctx: ReadContext, name: str, lineno: int, text_field: str, url_field: str, id_field: str, path: str
) -> Document | None:
    if not isinstance(row, dict):
        ctx.error("bad_record", f"{path}:{lineno}", "not a JSON object")
        return None
    if _RECORD_KEYS <= set(row):
        try:
            return ctx.checked(Document.from_dict(row), f"{path}:{lineno}")
        except (ValueError, TypeError) as exc:
            ctx.error("bad_record", f"{path}:{lineno}", str(exc))
            return None
    text = row.get(text_field)
    if not isinstance(text, str):
        ctx.error("bad_record", f"{path}:{lineno}", f"no string field {text_field!r}")
        return None
    if not text.strip():
        ctx.skip("empty_text")
        return None
    url = row.get(url_field) if isinstance(row.get(url_field), str) else None
    meta = {k: v for k, v in row.items() if isinstance(v, str) and k not in (text_field, url_field, id_field)}
    meta.setdefault("group", _host(url) or ctx.source)
    given = row.get(id_field)
    locator = str(given) if isinstance(given, (str, int, float)) else f"{name}:{lineno}"
    return ctx.document(locator, text, url, **meta)


def _host(url: str | None) -> str | None:
    if not url:
        return None

    return domain(url) or None
