"""Line and table formats: one document per line, CSV news articles, and dialog CSVs grouped into conversations.

CSV may be plain, gzip'd or inside a zip (every `.csv` member, in name order). Rows stream; the only exception is
a dialog file whose turns are not stored conversation by conversation (`group_consecutive: false`), which must be
held in memory to be grouped.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby
from typing import IO
from urllib.parse import urlsplit

from data_specs.errors import GlamkitError
from data_specs.records import Document
from sources.readers.base import (
    DECOMPRESS_ERRORS,
    MiB,
    ReadContext,
    capped,
    check_size,
    max_ratio,
    numbered_lines,
    open_stream,
)

csv.field_size_limit((1 << 31) - 1)
_SURROGATE = re.compile("[\udc80-\udcff]")


def _unescape(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_text_lines(path: str, ctx: ReadContext) -> Iterator[Document]:
    """One document per non-blank line. Options: `group` (meta group for every line; default the source name),
    `max_doc_bytes` (default 64 MiB; longer lines are counted `too_large`)."""
    if not check_size(path, ctx, sys.maxsize):
        return
    limit = int(ctx.opt("max_doc_bytes", 64 * MiB))
    group = ctx.opt("group", ctx.source)
    name = ctx.relative(path)
    for lineno, line in numbered_lines(path, ctx, limit):
        text = ctx.decode(line, f"{path}:{lineno}").strip()
        if text:
            yield ctx.document(f"{name}:{lineno}", text, None, group=group, line=str(lineno))


def read_labelled_lines(path: str, ctx: ReadContext) -> Iterator[Document]:
    """One document per line `LABEL<delimiter>text` (an SMS spam collection: `spam\tWin a prize...`); the label goes
    to meta.label. Options: `delimiter` (default tab), `kind` (meta.kind, e.g. sms: counted apart from web pages),
    `group` (default the source name). A line without the delimiter is counted as `bad_labelled_line`."""
    delimiter = ctx.opt("delimiter", "\t")
    kind = ctx.opt("kind")
    group = ctx.opt("group", ctx.source)
    name = ctx.relative(path)
    for doc in read_text_lines(path, ctx):
        label, sep, text = doc.text.partition(delimiter)
        text = text.strip()
        if not sep or not label.strip():
            ctx.error("bad_labelled_line", f"{path}:{doc.meta['line']}", "no label before the delimiter")
            continue
        if not text:
            ctx.skip("empty_text")
            continue
        yield ctx.document(f"{name}:{doc.meta['line']}", text, None, group=group, label=label.strip(), kind=kind,
                           line=doc.meta["line"])


# What a damaged or hostile zip raises while its members are listed or read (besides DECOMPRESS_ERRORS): a bad
# directory, a member name that is not UTF-8, an encrypted member (RuntimeError) or an unknown compression method.
ZIP_ERRORS: tuple[type[BaseException], ...] = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError,
                                               RuntimeError, UnicodeDecodeError, struct.error)


@contextmanager
def _csv_members(path: str, ctx: ReadContext) -> Iterator[list[tuple[str, IO[bytes]]]]:
    with open_stream(path, ctx) as (stream, raw):
        if path.endswith(".zip"):
            data = raw if raw.seekable() else io.BytesIO(raw.read())
            with zipfile.ZipFile(data) as zf:
                infos = sorted((i for i in zf.infolist() if i.filename.lower().endswith((".csv", ".tsv"))),
                               key=lambda i: i.filename)
                yield [(i.filename, capped(zf.open(i), lambda i=i: i.compress_size, max_ratio(ctx))) for i in infos]
        else:
            yield [("", stream)]


def _bounded_text(text: IO[str], limit: int, where: str, ctx: ReadContext) -> Iterator[str]:
    """The lines of a text stream for the csv module, each of at most `limit` characters in memory: a longer one is
    skipped (counted `too_large`) and given as an empty line, which csv reads as no row."""
    while True:
        line = text.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(("\n", "\r")):
            while line and not line.endswith(("\n", "\r")):
                line = text.readline(limit + 1)
            ctx.error("too_large", where, f"line over {limit} characters")
            yield ""
            continue
        yield line


def iter_csv_rows(path: str, ctx: ReadContext) -> Iterator[tuple[str, int, dict[str, str]]]:
    """(member, row number, row) for every row of every CSV member; bad rows and damaged streams are counted. A
    UTF-8 byte-order mark is dropped; a line or field over `max_doc_bytes` (64 MiB) is counted `too_large`."""
    if not check_size(path, ctx, sys.maxsize):
        return
    delimiter = ctx.opt("delimiter", ",")
    encoding = ctx.opt("encoding", "utf-8")
    limit = int(ctx.opt("max_doc_bytes", 64 * MiB))
    csv.field_size_limit(limit)
    try:
        with _csv_members(path, ctx) as members:
            for member, binary in members:
                where = f"{path}{'!' + member if member else ''}"
                text = io.TextIOWrapper(binary, encoding="utf-8-sig" if encoding == "utf-8" else encoding,
                                        errors="surrogateescape", newline="")
                reader = csv.DictReader(_bounded_text(text, limit, where, ctx), delimiter=delimiter)
                rowno = 0
                while True:
                    try:
                        row = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:
                        ctx.error("bad_csv_row", f"{where} line {reader.line_num}", str(exc))
                        continue
                    rowno += 1
                    if None in row:  # more fields than the header names
                        ctx.error("bad_csv_row", f"{where} line {reader.line_num}", "extra fields")
                        continue
                    values = {k: (v or "") for k, v in row.items()}
                    if _SURROGATE.search("".join(values.values())):  # undecodable bytes, escaped by the decoder
                        ctx.error("invalid_utf8_replaced", f"{where} line {reader.line_num}")
                        values = {k: _unescape(v) for k, v in values.items()}
                    yield member, rowno, values
    except (*ZIP_ERRORS, *DECOMPRESS_ERRORS) as exc:
        ctx.broken(exc, path)


def domain(url: str) -> str:
    """The host of a URL (or of a bare `host/path`), without www.; "" for one urlsplit refuses (`http://[x`)."""
    try:
        host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def _check_columns(checked: set[str], path: str, member: str, row: dict[str, str], columns: list[str]) -> None:
    """Fail, naming the file (and zip member), if the first row of a member lacks a configured column."""
    if member in checked:
        return
    missing = [c for c in columns if c and c not in row]
    if missing:
        where = f"{path}{'!' + member if member else ''}"
        raise GlamkitError(f"{where}: header at byte 0: CSV has no column(s) {missing} (has {sorted(row)[:20]}); fix "
                           f"the source's options")
    checked.add(member)


def read_news_csv(path: str, ctx: ReadContext) -> Iterator[Document]:
    """One article per row. Options: `text_column` (default text), `title_column`, `url_column`, `id_column`,
    `date_column`, `group_column` (a URL column gives the outlet's domain; default: url_column)."""
    text_col = ctx.opt("text_column", "text")
    title_col, url_col = ctx.opt("title_column"), ctx.opt("url_column")
    id_col, date_col = ctx.opt("id_column"), ctx.opt("date_column")
    group_col = ctx.opt("group_column", url_col)
    checked: set[str] = set()
    for member, rowno, row in iter_csv_rows(path, ctx):
        _check_columns(checked, path, member, row, [text_col, title_col, url_col, id_col, group_col, date_col])
        text = row[text_col].strip()
        if not text:
            ctx.skip("empty_text")
            continue
        url = row[url_col].strip() if url_col else None
        group_value = row[group_col].strip() if group_col else ctx.source
        group = domain(group_value) if "://" in group_value or group_col == url_col else group_value
        locator = f"{ctx.relative(path)}!{member}:" + (row[id_col] if id_col else str(rowno))
        yield ctx.document(
            locator, text, url or None, title=row[title_col].strip() if title_col else None, group=group or ctx.source,
            outlet=group or None, date=row[date_col].strip() if date_col else None,
        )


def read_dialog_csv(path: str, ctx: ReadContext) -> Iterator[Document]:
    """Turns grouped into conversations, one `SPEAKER: statement` line per turn.

    Options: `speaker_column` (default speaker), `text_column` (default text), `conversation_column` (a column name
    or a list of them; default: the whole file is one conversation), `order_column` (numeric turn order within a
    conversation), `group_column` (default: the conversation), `group_consecutive` (default true: turns of a
    conversation are adjacent, so rows stream; false holds the file in memory), `max_turns` (split longer
    conversations into documents of at most this many turns; 0 = never).
    """
    speaker_col = ctx.opt("speaker_column", "speaker")
    text_col = ctx.opt("text_column", "text")
    conv_cols = ctx.opt("conversation_column") or []
    conv_cols = [conv_cols] if isinstance(conv_cols, str) else list(conv_cols)
    order_col, group_col = ctx.opt("order_column"), ctx.opt("group_column")
    max_turns = int(ctx.opt("max_turns", 0))
    rows = iter_csv_rows(path, ctx)
    checked: set[str] = set()

    def key(item: tuple[str, int, dict[str, str]]) -> tuple[str, ...]:
        member, _, row = item
        _check_columns(checked, path, member, row, [speaker_col, text_col, order_col, group_col, *conv_cols])
        return (item[0], *(row[c].strip() for c in conv_cols))

    if ctx.opt("group_consecutive", True):
        conversations = ((k, list(g)) for k, g in groupby(rows, key=key))
    else:
        grouped: dict[tuple[str, ...], list[tuple[str, int, dict[str, str]]]] = {}
        for item in rows:
            grouped.setdefault(key(item), []).append(item)
        conversations = iter(sorted(grouped.items()))
    name = ctx.relative(path)
    for conv, items in conversations:
        if order_col:
            items.sort(key=lambda it: (_number(it[2][order_col]), it[1]))
        turns = [(it[2][speaker_col].strip(), it[2][text_col].strip()) for it in items]
        turns = [(s, t) for s, t in turns if t]
        if not turns:
            ctx.skip("empty_text")
            continue
        conv_name = " / ".join(conv[1:]) or name
        group = items[0][2][group_col].strip() if group_col else conv_name
        size = max_turns or len(turns)
        for part, i in enumerate(range(0, len(turns), size)):
            chunk = turns[i : i + size]
            text = "\n".join(f"{s}: {' '.join(t.split())}" if s else " ".join(t.split()) for s, t in chunk)
            speakers = ", ".join(sorted({s for s, _ in chunk if s}))
            yield ctx.document(
                f"{name}!{'|'.join(conv)}#{part}", text, None, title=conv_name, group=group, conversation=conv_name,
                turns=str(len(chunk)), speakers=speakers,
            )


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("inf")
