"""JSONL (plain or gzip) and Parquet: glamkit document records as they are, or any objects with a `text` field.

A full record (id, component, source, text, ...) passes through unchanged, so a previous run's output or another
tool's export can feed a source. A bare `{"text": ..., "url": ...}` object (C4, RedPajama, Dolma style) is stamped
with this source's name and component, an id from its `id` field or its line, and its other string fields as meta.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from data_specs.records import Document, read_parquet
from pipelines.readers.base import DECOMPRESS_ERRORS, ReadContext, check_size, offset, open_stream

_RECORD_KEYS = {"id", "component", "source", "text"}


def read_records(path: str, ctx: ReadContext) -> Iterator[Document]:
    """Documents from .jsonl / .jsonl.gz / .json.gz / .parquet. Options: `text_field` (default text),
    `url_field` (default url), `id_field` (default id)."""
    if not check_size(path, ctx, 1 << 62):
        return
    if path.endswith(".parquet"):
        yield from read_parquet(path)
        return
    text_field, url_field = ctx.opt("text_field", "text"), ctx.opt("url_field", "url")
    id_field = ctx.opt("id_field", "id")
    name = ctx.relative(path)
    with open_stream(path) as (stream, raw):
        lineno = 0
        try:
            for line in stream:
                lineno += 1
                if not line.strip():
                    continue
                try:
                    row = json.loads(ctx.decode(line, f"{path}:{lineno}"))
                except json.JSONDecodeError as exc:
                    ctx.error("bad_json", f"{path}:{lineno}", exc.msg)
                    continue
                doc = _document(row, ctx, name, lineno, text_field, url_field, id_field, path)
                if doc is not None:
                    yield doc
        except DECOMPRESS_ERRORS as exc:
            ctx.error("truncated", f"{path} at {offset(raw)} (after line {lineno})", str(exc))


def _document(
    row: Any, ctx: ReadContext, name: str, lineno: int, text_field: str, url_field: str, id_field: str, path: str
) -> Document | None:
    if not isinstance(row, dict):
        ctx.error("bad_record", f"{path}:{lineno}", "not a JSON object")
        return None
    if _RECORD_KEYS <= set(row):
        try:
            return Document.from_dict(row)
        except ValueError as exc:
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
    locator = str(row[id_field]) if row.get(id_field) is not None else f"{name}:{lineno}"
    return ctx.document(locator, text, url, **meta)


def _host(url: str | None) -> str | None:
    if not url:
        return None
    from pipelines.readers.tabular import domain

    return domain(url) or None
